"""`train_ssl`: a SimCLR encoder trained on (unlabelled) images; `tfsynth ssl`.

```
OUT/model.keras           the SimCLR trainer (encoder, projection head, optimizer)
OUT/checkpoint/           model.keras + state.json after every epoch (resume)
OUT/tensorboard/          scalars: loss, knn_accuracy (with a labelled probe)
OUT/summary.json          config, loss, probe accuracy, images/s, versions
```

Two views of each image come from a tfsynth augmentation policy on
tf.data. Epoch e's order and augmentations depend only on (seed, e), so a
run killed after epoch e and run again continues exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.errors import ConfigError, DataError

# Stronger than the `digits` preset: contrastive views must differ enough
# that matching them needs the digit's shape, not its exact pixels.
DEFAULT_POLICY = "fill:constant,rotate:15,translate:0.15,zoom:0.2,elastic:0.04,erase:0.5"
CHECKPOINT = "checkpoint"


@dataclass
class SSLConfig:
    """Everything `tfsynth ssl` trains with (the CLI builds it; `train_ssl` takes it).

    Example:

    >>> cfg = SSLConfig(data="mnist-10k[:100]", epochs=2)
    >>> SSLConfig.from_dict(cfg.to_dict()) == cfg.validate()
    True
    """

    data: str = "mnist-10k"
    probe: str | None = None
    epochs: int = 30
    batch_size: int = 256
    width: int = 16
    feature_dim: int = 128
    projection_dim: int = 64
    temperature: float = 0.2
    learning_rate: float = 2e-3
    policy: str = DEFAULT_POLICY
    probe_every: int = 5
    knn_k: int = 20
    seed: int = 0

    def validate(self) -> SSLConfig:
        """Returns self, or raises ConfigError naming the first bad field."""
        for name in ("epochs", "batch_size", "width", "feature_dim", "projection_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("probe_every", "knn_k"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(
                    f"{name}: expected a positive integer, got {getattr(self, name)!r}"
                )
        for name in ("temperature", "learning_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise ConfigError(f"{name}: expected a finite number > 0, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed: expected a non-negative integer, got {self.seed!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SSLConfig:
        from tfsynth.config import _from_dict  # config imports this module

        return _from_dict(cls, d, "ssl config").validate()


def steps_per_epoch(num_examples: int, batch_size: int, where: str = "data") -> int:
    """Full batches per epoch (static shapes); at least one, or DataError."""
    if num_examples < batch_size:
        raise DataError(
            f"{where}: {num_examples} images is fewer than one batch of {batch_size}; "
            "lower --batch-size"
        )
    return num_examples // batch_size


def view_batches(images: np.ndarray, config: SSLConfig, epoch: int):
    """Epoch `epoch` as a tf.data stream of (view1, view2) float batches in [-1, 1].

    The order is a stateless permutation keyed by (seed, epoch) and each
    batch's two views use two seeds folded from that key and the batch
    index, through the policy's `map_batch` (uint8 in, [-1, 1] out).
    """
    import tensorflow as tf

    from tfsynth.augment import build_policy

    policy = build_policy(config.policy, seed=config.seed)
    n, b = len(images), config.batch_size
    steps = steps_per_epoch(n, b)
    with tf.device("/cpu:0"):
        source = tf.constant(images)
    key = tf.constant([config.seed, epoch], tf.int64)
    order = tf.random.experimental.stateless_shuffle(tf.range(n), key, alg="philox")
    index = tf.reshape(order[: steps * b], [steps, b])

    def views(i, idx):
        x = tf.gather(source, idx)
        k = tf.random.experimental.stateless_fold_in(key, i, alg="philox")
        one = tf.random.experimental.stateless_fold_in(k, 0, alg="philox")
        two = tf.random.experimental.stateless_fold_in(k, 1, alg="philox")
        v1, _ = policy.map_batch(x, None, normalize=True, seed=one)
        v2, _ = policy.map_batch(x, None, normalize=True, seed=two)
        return v1, v2

    ds = tf.data.Dataset.from_tensor_slices((tf.range(steps, dtype=tf.int64), index))
    return ds.map(views, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def load_ssl(path: str | os.PathLike):
    """The `SimCLR` trainer in DIR/model.keras (or a .keras file); its `.encoder` embeds."""
    import keras

    import tfsynth.selfsup.simclr  # noqa: F401  (registers SimCLR)

    p = Path(path)
    file = p / "model.keras" if p.is_dir() else p
    if not file.is_file():
        raise DataError(f"{file}: no SSL model here; train one with `tfsynth ssl --out DIR`")
    try:
        return keras.saving.load_model(file)
    except Exception as e:  # a damaged or foreign file
        raise DataError(f"{file}: not a tfsynth SSL model ({type(e).__name__})") from None


def train_ssl(
    config: SSLConfig,
    out: str | os.PathLike,
    *,
    data=None,
    probe=None,
    overwrite: bool = False,
    log=None,
) -> dict[str, Any]:
    """Trains a SimCLR encoder per `config` into `out` (see the module docstring).

    Args:
        config: the settings; `config.data` / `config.probe` are the specs.
        out: the run directory; rerun the same call to resume.
        data, probe: `ImageDataset`s instead of the specs (labels of
            `data` are never read; `probe` must be labelled).
        overwrite: replace a finished run.
        log: optional print-like function for one line per epoch.

    Returns:
        The summary (also OUT/summary.json).

    Example:

    >>> import numpy as np, tempfile
    >>> from tfsynth.data import ImageDataset
    >>> ds = ImageDataset(np.random.default_rng(0).integers(0, 255, (8, 16, 16, 1), np.uint8))
    >>> cfg = SSLConfig(epochs=1, batch_size=4, width=2, feature_dim=4, projection_dim=2)
    >>> s = train_ssl(cfg, tempfile.mkdtemp() + "/ssl", data=ds)
    >>> s["epochs"], s["steps"]
    (1, 2)
    """
    config.validate()
    out = Path(out)
    data, probe = _inputs(config, data, probe)
    images = data.images
    _check_fresh(out, overwrite)
    model, start = _restore_or_build(config, out, data.shape, len(images))
    t0 = time.perf_counter()
    history = _fit_epochs(model, config, images, probe, out, start, log)
    wall = time.perf_counter() - t0
    return _finalize(model, config, out, data, history, wall, start, len(images))


def _inputs(config: SSLConfig, data, probe):
    from tfsynth.data import load_dataset

    data = data if data is not None else load_dataset(config.data)
    if probe is None and config.probe:
        probe = load_dataset(config.probe)
    if probe is not None:
        probe.require_labels("ssl --probe (k-NN accuracy)")
        if tuple(probe.shape) != tuple(data.shape):
            raise DataError(
                f"{probe.name}: images are {'x'.join(map(str, probe.shape))} but {data.name} "
                f"has {'x'.join(map(str, data.shape))}; shapes must match"
            )
    steps_per_epoch(len(data), config.batch_size, data.name)
    return data, probe


def _check_fresh(out: Path, overwrite: bool) -> None:
    if (out / "summary.json").exists():
        if not overwrite:
            raise DataError(
                f"{out}: holds a finished run; choose another --out or pass --overwrite"
            )
        shutil.rmtree(out)


def _restore_or_build(config: SSLConfig, out: Path, shape, n: int):
    """The trainer and the first epoch to run: from OUT/checkpoint when one exists."""
    import keras

    from tfsynth.selfsup.simclr import build_simclr

    state_file = out / CHECKPOINT / "state.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if state.get("config") != config.to_dict():
            raise ConfigError(
                f"{out}: its checkpoint was trained with other settings; use the same "
                "options, another --out, or --overwrite"
            )
        return load_ssl(out / CHECKPOINT), int(state["epoch"])
    model = build_simclr(
        shape,
        width=config.width,
        feature_dim=config.feature_dim,
        projection_dim=config.projection_dim,
        temperature=config.temperature,
        seed=config.seed,
    )
    total = config.epochs * steps_per_epoch(n, config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, total)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    return model, 0


def _fit_epochs(model, config: SSLConfig, images, probe, out: Path, start: int, log):
    """Runs epochs `start..epochs-1`: fit, probe, TensorBoard scalars, checkpoint."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(out / "tensorboard"))
    history: list[dict[str, float]] = []
    for epoch in range(start, config.epochs):
        # shuffle=False: the order is view_batches' permutation of (seed, epoch),
        # which resume relies on; Keras cannot shuffle a tf.data stream anyway (it warns).
        batches = view_batches(images, config, epoch)
        fit = model.fit(batches, epochs=1, verbose=0, shuffle=False)
        row = {"epoch": epoch + 1, "loss": float(fit.history["loss"][-1])}
        last = epoch + 1 == config.epochs
        if probe is not None and ((epoch + 1) % config.probe_every == 0 or last):
            row["knn_accuracy"] = probe_accuracy(model.encoder, probe, config.knn_k)
        step = int(model.optimizer.iterations.numpy())
        with writer.as_default():
            for name, value in row.items():
                if name != "epoch":
                    tf.summary.scalar(name, value, step=step)
        writer.flush()
        _checkpoint(model, config, out, epoch + 1)
        history.append(row)
        if log:
            log(", ".join(f"{k} {v:.4g}" for k, v in row.items()))
    return history


def probe_accuracy(encoder, probe, k: int = 20) -> float:
    """Leave-one-out k-NN accuracy of a labelled probe set in the encoder's feature space."""
    from tfsynth.selfsup.features import embed, knn_accuracy

    return knn_accuracy(embed(encoder, probe.images), probe.labels, probe.num_classes, k)


def _checkpoint(model, config: SSLConfig, out: Path, epoch: int) -> None:
    from tfsynth.io import atomic_write_json

    ckpt = out / CHECKPOINT
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp = ckpt / f".model.keras.tmp-{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, ckpt / "model.keras")
    atomic_write_json(ckpt / "state.json", {"epoch": epoch, "config": config.to_dict()})


def _finalize(model, config, out: Path, data, history, wall: float, start: int, n: int):
    from tfsynth.summary import write_summary

    tmp = out / f".model.keras.tmp-{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, out / "model.keras")
    spe = steps_per_epoch(n, config.batch_size)
    ran = (config.epochs - start) * spe
    summary = {
        "data": data.name,
        "num_examples": n,
        "labels_used": False,
        "epochs": config.epochs,
        "resumed_from_epoch": start,
        "steps": config.epochs * spe,
        "loss": history[-1]["loss"] if history else None,
        "seconds": round(wall, 2),
        "images_per_second": round(ran * config.batch_size / wall, 1) if wall > 0 else 0.0,
        "model_path": str(out / "model.keras"),
        "config": config.to_dict(),
    }
    probes = [r["knn_accuracy"] for r in history if "knn_accuracy" in r]
    if probes:
        summary["knn_accuracy"] = probes[-1]
    write_summary(out, "ssl", summary)
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
    return {**summary, "history": history}
