"""Seconds of training until a generator's curated samples are good enough to train on.

Quality is TSTR / TRTR on the validation split: the utility classifier
(`tfsynth.evaluation.classifier`, the recipe of `tfsynth evaluate`, 880
steps: 8 epochs of the real training set) trained once on the real
training images (TRTR) and, after every epoch of the generator, on 2,000
of its curated samples (TSTR, 200 per class, the same step budget), each
tested on mnist-10k[7000:8000], which no generator trains on. Curation is
the same for both contenders: 3 candidates per wanted sample, the ones the
domain classifier assigns to their label with confidence >= 0.9 first.

Contenders, trained on mnist-10k[:7000], one epoch each in turn (tfsynth,
reference, tfsynth, ...) in this process, so both see the same load:

- tfsynth: `build_model("cgan")` at the quick preset's settings (width 32,
  latent 64, batch 64) on `ImageDataset.epoch_batches`, as `tfsynth train`;
- reference: the keras.io "Conditional GAN" example (Sayak Paul, 2021; its
  networks, one-hot conditioning, Adam 3e-4, batch 64, [0, 1] pixels and
  train_step), re-implemented here.

A contender stops when it reaches TARGET or after CAP seconds of training
(the quality checks are not counted). The PNG shows both curves.

    python bench/time_to_quality.py [--cap 600] [--target 0.9]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "time_to_quality.json"
TRAIN, VAL = "mnist-10k[:7000]", "mnist-10k[7000:8000]"
N_SYNTHETIC, POOL, MIN_CONFIDENCE, BATCH = 2000, 3, 0.9, 64


def reference_cgan(num_classes: int = 10, latent_dim: int = 128):
    """The keras.io Conditional GAN: (model, sampler(noise, labels) -> uint8)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import layers, ops

    g_in = latent_dim + num_classes
    disc = keras.Sequential([
        keras.layers.InputLayer((28, 28, 1 + num_classes)),
        layers.Conv2D(64, 3, strides=2, padding="same"), layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(128, 3, strides=2, padding="same"), layers.LeakyReLU(negative_slope=0.2),
        layers.GlobalMaxPooling2D(), layers.Dense(1),
    ])  # fmt: skip
    gen = keras.Sequential([
        keras.layers.InputLayer((g_in,)),
        layers.Dense(7 * 7 * g_in), layers.LeakyReLU(negative_slope=0.2),
        layers.Reshape((7, 7, g_in)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(1, 7, padding="same", activation="sigmoid"),
    ])  # fmt: skip

    class ConditionalGAN(keras.Model):
        def __init__(self):
            super().__init__()
            self.discriminator, self.generator = disc, gen
            self.seed_generator = keras.random.SeedGenerator(1337)
            self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
            self.d_optimizer = keras.optimizers.Adam(3e-4)
            self.g_optimizer = keras.optimizers.Adam(3e-4)

        def _label_maps(self, one_hot):
            return ops.tile(one_hot[:, None, None, :], (1, 28, 28, 1))

        def train_step(self, data):
            real, one_hot = data
            n = ops.shape(real)[0]
            maps = self._label_maps(one_hot)
            z = keras.random.normal((n, latent_dim), seed=self.seed_generator)
            fake = self.generator(ops.concatenate([z, one_hot], 1))
            both = ops.concatenate(
                [ops.concatenate([fake, maps], -1), ops.concatenate([real, maps], -1)], 0
            )
            target = ops.concatenate([ops.ones((n, 1)), ops.zeros((n, 1))], 0)
            with tf.GradientTape() as tape:
                d_loss = self.bce(target, self.discriminator(both))
            w = self.discriminator.trainable_weights
            self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, w), w))
            z = keras.random.normal((n, latent_dim), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                fake = self.generator(ops.concatenate([z, one_hot], 1))
                pred = self.discriminator(ops.concatenate([fake, maps], -1))
                g_loss = self.bce(ops.zeros((n, 1)), pred)
            w = self.generator.trainable_weights
            self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, w), w))
            return {"d_loss": d_loss, "g_loss": g_loss}

    model = ConditionalGAN()
    model.compile()

    def sample(noise, labels):
        one_hot = np.eye(num_classes, dtype="float32")[labels]
        x = gen.predict(np.concatenate([noise[:, :latent_dim], one_hot], 1), batch_size=256,
                        verbose=0)  # fmt: skip
        return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)

    return model, sample


def tfsynth_cgan(train):
    """tfsynth's cgan at the quick preset's settings: (trainer, sampler(noise, labels) -> uint8)."""
    import numpy as np

    from tfsynth.config import FitConfig, TrainConfig
    from tfsynth.data.pipeline import to_uint8
    from tfsynth.training import _build, _compile

    quick = TrainConfig()  # the run's settings; DiffAugment stays off on 7,000 images
    cfg = FitConfig("cgan", width=quick.width, latent_dim=quick.latent_dim, seed=0)
    trainer = _build(cfg, train)
    _compile(trainer, None, "auto")

    def sample(noise, labels):
        chunks = [trainer.generate(noise[i : i + 256, : trainer.latent_dim], labels[i : i + 256])
                  for i in range(0, len(labels), 256)]  # fmt: skip
        return np.concatenate([to_uint8(c).numpy() for c in chunks])

    return trainer, sample


def epoch_data(name: str, train, epoch: int):
    """One epoch of training batches in the contender's own format."""
    import numpy as np
    import tensorflow as tf

    if name == "tfsynth":
        spe = len(train) // BATCH
        return train.epoch_batches(BATCH, spe, seed=0, start_step=epoch * spe,
                                   stop_step=(epoch + 1) * spe), spe  # fmt: skip
    x = train.images.astype("float32") / 255.0
    y = np.eye(train.num_classes, dtype="float32")[train.labels]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1024, seed=epoch).batch(BATCH)
    return ds, -(-len(train) // BATCH)


def curated(sample, curator, num_classes: int, seed: int):
    """N_SYNTHETIC samples, N / K per class, the curator's accepted candidates first."""
    import numpy as np

    from tfsynth.data import ImageDataset
    from tfsynth.models.sampling import noise_for

    labels = np.arange(POOL * N_SYNTHETIC) % num_classes
    images = sample(noise_for(seed, np.arange(len(labels)), 128), labels)
    keep, confidence = curator(images, labels)
    chosen = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        order = idx[np.lexsort((-confidence[idx], ~keep[idx]))]
        chosen.append(order[: N_SYNTHETIC // num_classes])
    chosen = np.concatenate(chosen)
    return ImageDataset(images[chosen], labels[chosen], name="curated"), float(keep.mean())


def quality(sample, curator, val, steps: int, seed: int) -> dict:
    from tfsynth.evaluation.classifier import accuracy, train_classifier

    synthetic, kept = curated(sample, curator, val.num_classes, seed)
    clf = train_classifier(synthetic, steps=steps, seed=0)
    return {"tstr": round(accuracy(clf, val), 4), "kept_fraction": round(kept, 4)}


def race(contenders: dict, train, val, curator, trtr: float, steps: int, args) -> dict:
    """Trains the contenders an epoch each in turn; checks quality after every epoch."""
    state = {k: {"seconds": 0.0, "epoch": 0, "curve": [], "reached_at": None} for k in contenders}
    active = list(contenders)
    while active:
        for name in list(active):
            model, sample = contenders[name]
            s = state[name]
            ds, spe = epoch_data(name, train, s["epoch"])
            t = time.perf_counter()
            model.fit(ds, epochs=1, steps_per_epoch=spe, verbose=0, shuffle=False)
            s["seconds"] += time.perf_counter() - t
            s["epoch"] += 1
            q = quality(sample, curator, val, steps, seed=s["epoch"])
            q.update(epoch=s["epoch"], seconds=round(s["seconds"], 2),
                     ratio=round(q["tstr"] / trtr, 4))  # fmt: skip
            s["curve"].append(q)
            print(f"{name:<10} epoch {s['epoch']:>3} {s['seconds']:7.1f} s  TSTR {q['tstr']:.3f}"
                  f"  TSTR/TRTR {q['ratio']:.3f}  kept {q['kept_fraction']:.2f}", flush=True)  # fmt: skip
            if q["ratio"] >= args.target:
                s["reached_at"] = q["seconds"]
            if s["reached_at"] is not None or s["seconds"] >= args.cap:
                active.remove(name)
    return state


def figure(state: dict, target: float, cap: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, s in state.items():
        xs = [0.0] + [p["seconds"] for p in s["curve"]]
        ys = [0.0] + [p["ratio"] for p in s["curve"]]
        when = f"{s['reached_at']:.0f} s" if s["reached_at"] is not None else f"not in {cap:.0f} s"
        ax.plot(xs, ys, "o-", ms=3, label=f"{name} (reaches {target}: {when})")
    ax.axhline(target, color="gray", ls="--", lw=1)
    ax.set_xlabel("training seconds (2-core CPU; quality checks not counted)")
    ax.set_ylabel("TSTR / TRTR on the validation split")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cap", type=float, default=600.0, help="training seconds per contender")
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args(argv)
    from tfsynth.curation import Curator
    from tfsynth.data import load_dataset
    from tfsynth.evaluation.classifier import (
        accuracy,
        reuse_compiled,
        step_budget,
        train_classifier,
    )
    from tfsynth.evaluation.features import domain_classifier
    from tfsynth.io import atomic_write_json

    start = machine_info()
    train, val = load_dataset(TRAIN), load_dataset(VAL)
    steps = step_budget(len(train), epochs=8, batch_size=64, min_steps=300)
    with reuse_compiled():
        trtr = accuracy(train_classifier(train, steps=steps, seed=0), val)
        print(f"TRTR (real {len(train)} -> val): {trtr:.4f}", flush=True)
        curator = Curator(domain_classifier(train, seed=0)[0], MIN_CONFIDENCE)
        contenders = {"tfsynth": tfsynth_cgan(train), "reference": reference_cgan()}
        state = race(contenders, train, val, curator, trtr, steps, args)
    t, r = state["tfsynth"]["reached_at"], state["reference"]["reached_at"]
    result = {
        "benchmark": "time_to_quality",
        "command": "python bench/time_to_quality.py " + " ".join(argv or sys.argv[1:]),
        "train": TRAIN, "val": VAL, "target": args.target, "cap_seconds": args.cap,
        "classifier_steps": steps, "n_synthetic": N_SYNTHETIC, "trtr": trtr,
        "contenders": state,
        "speedup": round(r / t, 2) if t and r else None,
        "speedup_at_least": round(args.cap / t, 2) if t and r is None else None,
        "machine": start,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }  # fmt: skip
    atomic_write_json(args.out, result)
    figure(state, args.target, args.cap).savefig(args.out.with_suffix(".png"), dpi=110)
    for name, s in state.items():
        when = f"{s['reached_at']:.1f} s" if s["reached_at"] is not None else "never (cap)"
        print(f"{name:<10} reaches {args.target}: {when}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
