"""Training throughput of tfsynth's dcgan against the keras.io reference GAN.

The reference is the keras.io "GAN overriding Model.train_step" structure
(guides/custom_train_step_in_tensorflow, "Wrapping up: an end-to-end GAN
example"): MNIST 28x28, batch 64, latent 128, float32, a discriminator
step on concat(fake, real) with noisy labels, then a generator step on
fresh noise. tfsynth's `GAN(loss="dcgan")` trains exactly the same
generator and discriminator layers; it differs only in its train_step
(one shared forward pass for both gradients, a generator EMA, static
shapes) and in its compile defaults (XLA where Keras's "auto" enables it).

tfsynth's step does less work per image than the keras.io step (one
generator pass instead of two: 0.46 vs 0.63 GFLOP), so the bench also runs
`reference_shared_fp32`: the keras.io networks, losses and optimizers with
a step that reuses one generator pass and one discriminator pass on
concat(fake, real) for both gradients, i.e. tfsynth's algorithm. Its
ratio (`ratio_same_work`) separates the implementation from the algorithm.

Contenders run interleaved (ref, ref_shared, ours_fp32, ours_bf16, ref,
...) after a warm-up; each round's images/s ratio is taken and the median
reported.
MFU is model FLOPs (analytic conv/dense count: forward + 2x backward) per
second over a float32 matmul peak measured in the same run.

    python bench/train_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from _env import machine_info  # noqa: E402
from keras import layers, ops  # noqa: E402

from tfsynth.models import GAN  # noqa: E402
from tfsynth.training import precision_policy  # noqa: E402

LATENT = 128
BATCH = 64


def reference_discriminator():
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(64, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(128, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.GlobalMaxPooling2D(),
            layers.Dense(1, dtype="float32"),
        ],
        name="discriminator",
    )


def reference_generator():
    return keras.Sequential(
        [
            keras.Input(shape=(LATENT,)),
            layers.Dense(7 * 7 * 128),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Reshape((7, 7, 128)),
            layers.Conv2DTranspose(128, (4, 4), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(128, (4, 4), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(1, (7, 7), padding="same", activation="sigmoid", dtype="float32"),
        ],
        name="generator",
    )


class ReferenceGAN(keras.Model):
    """The keras.io GAN, as published (TensorFlow backend)."""

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(1337)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = ops.shape(real_images)[0]
        random_latent_vectors = keras.random.normal(
            shape=(batch_size, self.latent_dim), seed=self.seed_generator
        )
        generated_images = self.generator(random_latent_vectors)
        combined_images = ops.concatenate([generated_images, real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(combined_images)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        random_latent_vectors = keras.random.normal(
            shape=(batch_size, self.latent_dim), seed=self.seed_generator
        )
        misleading_labels = ops.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(self.generator(random_latent_vectors))
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


class SharedPassReferenceGAN(ReferenceGAN):
    """The keras.io GAN with tfsynth's simultaneous update: one G and one D pass per step.

    Same networks, losses and optimizers; the generator's loss reads the
    discriminator's logits on the fake half of the batch the discriminator
    step already computed, so the step does the work of tfsynth's.
    """

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = ops.shape(real_images)[0]
        z = keras.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape(persistent=True) as tape:
            generated_images = self.generator(z)
            combined_images = ops.concatenate([generated_images, real_images], axis=0)
            predictions = self.discriminator(combined_images)
            d_loss = self.loss_fn(labels, predictions)
            g_loss = self.loss_fn(ops.zeros((batch_size, 1)), predictions[:batch_size])
        d_grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        g_grads = tape.gradient(g_loss, self.generator.trainable_weights)
        del tape
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_weights))
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_weights))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def make_reference(cls=ReferenceGAN):
    m = cls(reference_discriminator(), reference_generator(), LATENT)
    m.compile(
        d_optimizer=keras.optimizers.Adam(learning_rate=0.0003),
        g_optimizer=keras.optimizers.Adam(learning_rate=0.0003),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return m


def make_ours(precision):
    with precision_policy(precision):
        m = GAN(reference_generator(), reference_discriminator(), loss="dcgan", seed=0)
        m.compile()  # tfsynth defaults: Adam(2e-4, 0.5), jit_compile="auto"
    return m


def layer_flops(model, batch_shape_in) -> float:
    """Forward FLOPs per example of Conv2D / Conv2DTranspose / Dense layers (2 per MAC)."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2DTranspose):
            h, w, cin = layer.input.shape[1:]
            kh, kw = layer.kernel_size
            total += 2.0 * h * w * kh * kw * cin * layer.filters
        elif isinstance(layer, layers.Conv2D):
            h, w, _ = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += 2.0 * h * w * kh * kw * cin * layer.filters
        elif isinstance(layer, layers.Dense):
            total += 2.0 * layer.input.shape[-1] * layer.units
    return total


def matmul_peak(n=2048, reps=10, trials=5) -> float:
    """Float32 matmul FLOP/s, best of `trials` (the denominator of MFU)."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n)) / n**0.5  # keeps the chained product bounded

    @tf.function
    def run(a, b):
        # A dependent chain: identical independent matmuls would be merged by CSE.
        c = a
        for _ in range(reps):
            c = tf.matmul(c, b)
        return tf.reduce_sum(c)

    run(a, b).numpy()
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        run(a, b).numpy()
        best = max(best, 2.0 * n**3 * reps / (time.perf_counter() - t))
    return best


def images_per_second(model, ds, steps) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) over one fit."""
    t, c = time.perf_counter(), time.process_time()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * BATCH / (time.perf_counter() - t), steps * BATCH / (time.process_time() - c)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="about a minute: fewer, shorter rounds")
    p.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "train_throughput.json")
    )
    args = p.parse_args(argv)
    rounds, steps = (3, 8) if args.quick else (7, 25)

    from tfsynth.data import load_dataset

    x = load_dataset("mnist-10k[:8000]").images
    x01 = x.astype("float32") / 255.0  # the keras.io example trains on [0, 1]
    ds = (
        tf.data.Dataset.from_tensor_slices(x01)
        .shuffle(1024, seed=0)
        .batch(BATCH, drop_remainder=True)
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )

    start = machine_info()
    contenders = {
        "reference_fp32": make_reference(),
        "reference_shared_fp32": make_reference(SharedPassReferenceGAN),
        "tfsynth_fp32": make_ours("float32"),
        "tfsynth_bf16": make_ours("mixed_bfloat16"),
    }
    for m in contenders.values():  # warm-up: tracing (and XLA compile where on)
        images_per_second(m, ds, 3)
    samples = {k: [] for k in contenders}
    cpu_samples = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, m in contenders.items():
            wall, cpu = images_per_second(m, ds, steps)
            samples[name].append(wall)
            cpu_samples[name].append(cpu)
    # Other jobs on a 2-core machine take whole shares of a core, which moves
    # wall-clock ratios in steps of 2x; images per CPU-second of this process
    # (TensorFlow's threads included) is the load-robust view of the same work.
    cpu_ratios = {
        k: round(statistics.median(a / b for a, b in zip(v, cpu_samples["reference_fp32"])), 3)
        for k, v in cpu_samples.items()
    }
    cpu_same = statistics.median(
        a / b for a, b in zip(cpu_samples["tfsynth_fp32"], cpu_samples["reference_shared_fp32"])
    )
    ref = samples["reference_fp32"]
    ratio_fp32 = statistics.median(a / b for a, b in zip(samples["tfsynth_fp32"], ref))
    ratio_bf16 = statistics.median(a / b for a, b in zip(samples["tfsynth_bf16"], ref))
    ratio_same = statistics.median(
        a / b for a, b in zip(samples["tfsynth_fp32"], samples["reference_shared_fp32"])
    )

    g, d = reference_generator(), reference_discriminator()
    g_f, d_f = layer_flops(g, None), layer_flops(d, None)
    # tfsynth's step: G forward once, D forward on real and fake, and backward
    # passes (2x forward) for both: 3 * (G + 2 D) per image.
    ours_flops = 3.0 * (g_f + 2.0 * d_f)
    # keras.io step: G forward twice (once without a tape), D on 2B, then D + G again with backward.
    ref_flops = g_f + 3.0 * 2.0 * d_f + 3.0 * (g_f + d_f)
    peak = matmul_peak()
    med = {k: statistics.median(v) for k, v in samples.items()}
    flops = {"reference_fp32": ref_flops, "reference_shared_fp32": ours_flops,
             "tfsynth_fp32": ours_flops, "tfsynth_bf16": ours_flops}  # fmt: skip
    mfu = {k: round(med[k] * flops[k] / peak, 4) for k in med}
    mfu_fp32 = mfu["tfsynth_fp32"]
    result = {
        "benchmark": "train_throughput",
        "quick": args.quick,
        "batch_size": BATCH,
        "image_shape": [28, 28, 1],
        "rounds": rounds,
        "steps_per_round": steps,
        "images_per_second": {k: round(v, 1) for k, v in med.items()},
        "ratio_fp32": round(ratio_fp32, 3),
        "ratio_bf16": round(ratio_bf16, 3),
        "ratio_same_work": round(ratio_same, 3),
        "images_per_cpu_second": {
            k: round(statistics.median(v), 1) for k, v in cpu_samples.items()
        },
        "cpu_ratio_vs_reference": cpu_ratios,
        "cpu_ratio_same_work": round(cpu_same, 3),
        "images_per_second_per_round": {k: [round(x, 1) for x in v] for k, v in samples.items()},
        "ratios_per_round": {
            k: [round(a / b, 3) for a, b in zip(samples[k], ref)] for k in samples
        },
        "mfu_fp32": mfu_fp32,
        "mfu_reference_fp32": mfu["reference_fp32"],
        "mfu": mfu,
        "mfu_note": "bf16 share is over the float32 matmul peak",
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "model_gflops_per_image": {
            "tfsynth": round(ours_flops / 1e9, 4),
            "reference": round(ref_flops / 1e9, 4),
            "reference_shared": round(ours_flops / 1e9, 4),
        },
        "jit_compile": {k: bool(m.jit_compile) for k, m in contenders.items()},
        "devices": [d.device_type for d in tf.config.list_physical_devices()],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "machine_info": start,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }
    print(f"{'contender':<22} {'images/s':>10} {'ratio':>7} {'GFLOP/im':>8} {'MFU':>6}")
    for k, v in med.items():
        r = statistics.median(a / b for a, b in zip(samples[k], ref))
        print(f"{k:<22} {v:>10.1f} {r:>7.3f} {flops[k] / 1e9:>8.3f} {mfu[k]:>6.3f}")
    print(f"same work (tfsynth_fp32 / reference_shared_fp32): {ratio_same:.3f}")
    print(f"per CPU-second: ratios {cpu_ratios}, same work {cpu_same:.3f}")
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s; MFU tfsynth fp32 {mfu_fp32:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from tfsynth.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
