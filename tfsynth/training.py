"""Training wiring: fit(), callbacks, checkpoints and resume, strategies, precision.

`train` turns an `ImageDataset` into a trained generator in a run directory:

```
OUT/model.keras       the trainer (GAN or VAE), written when training ends
OUT/tensorboard/      scalars (train/) and fixed-noise sample grids (samples/)
OUT/samples/          a PNG grid per epoch (one row per class when conditional)
OUT/checkpoint/       model.keras + state.json while training runs (for resume)
OUT/summary.json      images_per_second, losses, steps, config, versions
```

A run that is killed (even with SIGKILL) resumes from OUT/checkpoint when
`train` is called again with the same OUT: a checkpoint taken mid-epoch
resumes mid-epoch, on the batches an uninterrupted run would see next
(`ImageDataset.epoch_batches`) and with the noise stream saved in the
checkpoint, so on CPU the resumed run ends with the same weights and
optimizer state as an uninterrupted one, bit for bit. A NaN/inf loss stops training and keeps the last good
checkpoint as model.keras.

`FitConfig` (tfsynth.config) holds every option and its default; `train`
returns a `Trained` (the kept model, the summary, OUT). Sampling a model
into a dataset directory is `tfsynth.generation.generate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfsynth.config import FitConfig
from tfsynth.errors import ConfigError, DataError, TfsynthError
from tfsynth.generation import generate  # noqa: F401  (moved there; re-exported)
from tfsynth.io import atomic_write_json
from tfsynth.models import (
    MODEL_FILE,
    build_model,
    check_image_shape,
    is_conditional,
    model_id,
    set_sampling,
)
from tfsynth.models.diffusion import check_sampling
from tfsynth.models.sampling import noise_for
from tfsynth.privacy import wiring as privacy
from tfsynth.summary import write_summary

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("none", "mirrored", "multiworker", "tpu")
CHECKPOINT_DIR = "checkpoint"
CLASSIFIER_FILE = "classifier.keras"
LAST_FILE = "last.keras"
STATE_FILE = "state.json"


class TrainingDiverged(TfsynthError):
    """Losses became NaN/inf before any checkpoint was written."""


# -- small helpers -------------------------------------------------------------


def save_model(model, path: str | os.PathLike) -> Path:
    """Saves a `.keras` file atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def precision_policy(name: str):
    """Sets the global Keras dtype policy for the block, then restores it."""
    if name not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got {name!r}")
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def make_strategy(strategy) -> tf.distribute.Strategy | None:
    """None/'none', 'mirrored', 'multiworker' (TF_CONFIG), 'tpu', or a Strategy."""
    if strategy is None or strategy == "none":
        return None
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ConfigError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")


def is_multiworker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker run."""
    if not is_multiworker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type in (None, "worker") and task_id == 0 and not has_chief


def _finite(logs) -> bool:
    return all(math.isfinite(float(v)) for v in (logs or {}).values() if np.ndim(v) == 0)


def _sample_inputs(model, seed: int, per_class: int = 8, max_classes: int = 10):
    """Fixed noise (and one row of labels per class) for the sample grids."""
    k = min(model.num_classes, max_classes)
    if k:
        labels = np.repeat(np.arange(k), per_class).astype(np.int64)
    else:
        labels = np.zeros(64, np.int64)
    # A seed far from the ones used for generation, so grids do not repeat datasets.
    noise = noise_for(seed + 104_729, np.arange(len(labels)), model.latent_dim)
    return noise, labels


def sample_grid_figure(model, noise, labels, title: str | None = None):
    """A matplotlib figure of generated samples: one row per class when conditional."""
    from tfsynth.data.pipeline import to_uint8
    from tfsynth.plotting import class_grid, image_grid

    images = to_uint8(model.generate(noise, labels if model.num_classes else None)).numpy()
    if model.num_classes:
        k = int(labels.max()) + 1
        names = (model.class_names or [str(i) for i in range(model.num_classes)])[:k]
        return images, class_grid(images, labels, names, per_class=len(labels) // k, title=title)
    return images, image_grid(images, ncols=8, title=title)


# -- callbacks -------------------------------------------------------------------


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite logged value (any metric, not only `loss`)."""

    def __init__(self):
        super().__init__()
        self.bad_step = None

    def on_train_batch_end(self, batch, logs=None):
        if self.bad_step is None and not _finite(logs):
            self.bad_step = int(self.model.train_steps.numpy())
            self.model.stop_training = True


# Per-epoch work (a checkpoint, a sample grid) runs at most once per this many
# steps, besides the first and last epochs: a sample grid costs about as much
# as 20 training steps of the quick cgan, so 7-step epochs would pay it 3x
# over. Epochs of a step budget are at least this long (`_plan`).
MIN_EPOCH_STEPS = 100


class EpochWork:
    """Says whether an epoch's end should do per-epoch work: first, last, or `every` steps on.

    Example:

    >>> work = EpochWork(every=10)
    >>> [work.due(step, epoch, epochs=5) for epoch, step in enumerate([4, 8, 12, 16, 20])]
    [True, False, False, True, True]
    """

    def __init__(self, every: int = MIN_EPOCH_STEPS):
        self.every = int(every)
        self.last_step = None

    def due(self, step: int, epoch: int, epochs: int | None) -> bool:
        last_epoch = epochs is not None and epoch + 1 >= epochs
        if self.last_step is None or last_epoch or step - self.last_step >= self.every:
            self.last_step = step
            return True
        return False


def _epochs(callback) -> int | None:
    return (callback.params or {}).get("epochs")


class Checkpoint(keras.callbacks.Callback):
    """Saves OUT/checkpoint/{model.keras, state.json} every N steps and at epoch ends.

    An epoch's end saves when `EpochWork` says so (first and last epochs,
    and at most once per `MIN_EPOCH_STEPS` steps), and the end of training
    always does. Nothing is saved once `guard` has seen a NaN, so the
    checkpoint on disk is always the last good one. Both files are
    replaced atomically, the model first, so state.json never points past
    the model on disk.
    """

    def __init__(self, directory, steps_per_epoch, every=None, guard=None, meta=None, enabled=True):
        super().__init__()
        self.directory = Path(directory)
        self.steps_per_epoch = steps_per_epoch
        self.every = every
        self.guard = guard
        self.meta = dict(meta or {})
        self.enabled = enabled
        self.last_saved = None
        self.work = EpochWork()

    def _save(self):
        if self.guard is not None and self.guard.bad_step is not None:
            return
        step = int(self.model.train_steps.numpy())
        if step == self.last_saved:
            return
        if self.enabled:
            save_model(self.model, self.directory / MODEL_FILE)
        else:  # a non-chief worker still takes part in any collective read
            save_model(self.model, Path(tempfile.mkdtemp()) / MODEL_FILE)
        if self.enabled:
            atomic_write_json(
                self.directory / STATE_FILE,
                {"step": step, "steps_per_epoch": self.steps_per_epoch, **self.meta},
            )
        self.last_saved = step

    def on_train_batch_end(self, batch, logs=None):
        if self.every and int(self.model.train_steps.numpy()) % self.every == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if self.work.due(int(self.model.train_steps.numpy()), epoch, _epochs(self)):
            self._save()

    def on_train_end(self, logs=None):
        self._save()


class SampleGrid(keras.callbacks.Callback):
    """Fixed-noise samples at epoch ends: a PNG in OUT/samples and a TensorBoard image.

    An epoch gets a grid when `EpochWork` says so: the first and last
    epochs, and at most once per `MIN_EPOCH_STEPS` steps in between.
    """

    def __init__(self, out_dir, log_dir, seed=0, enabled=True):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.log_dir = str(log_dir)
        self.seed = seed
        self.enabled = enabled
        self._writer = None
        self._inputs = None
        self.work = EpochWork()

    def on_train_begin(self, logs=None):
        if self.enabled and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        if self._inputs is None:
            self._inputs = _sample_inputs(self.model, self.seed)

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.train_steps.numpy())
        if not (self.enabled and self.work.due(step, epoch, _epochs(self))):
            return
        from tfsynth.plotting import save_figure, tile_images

        noise, labels = self._inputs
        images, fig = sample_grid_figure(self.model, noise, labels, title=f"epoch {epoch + 1}")
        save_figure(fig, self.out_dir / f"epoch_{epoch + 1:03d}.png")
        ncols = 8 if not self.model.num_classes else len(labels) // (int(labels.max()) + 1)
        mosaic = tile_images(images, ncols=ncols)
        with self._writer.as_default():
            tf.summary.image("fixed_noise_samples", mosaic[None], step=epoch + 1)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()


# -- the custom multi-worker loop ---------------------------------------------


def _distributed_fit(
    model, dataset, strategy, *, epochs, initial_epoch, steps_per_epoch, skip, callbacks, verbose
):
    """fit() for MultiWorkerMirroredStrategy, where Keras' own fit fails on this stack.

    Runs `strategy.run(model.train_step)` in a tf.function over the
    distributed dataset and drives the same Keras callbacks.
    """
    dist = iter(strategy.experimental_distribute_dataset(dataset.repeat()))

    @tf.function
    def step(batch):
        out = strategy.run(model.train_step, args=(batch,))
        return {
            k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in out.items()
        }

    cbs = keras.callbacks.CallbackList(
        callbacks, model=model, epochs=epochs, steps=steps_per_epoch, verbose=verbose
    )
    model.stop_training = False
    cbs.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        cbs.on_epoch_begin(epoch)
        first = skip if epoch == initial_epoch else 0
        for b in range(first, steps_per_epoch):
            cbs.on_train_batch_begin(b)
            logs = {k: float(v) for k, v in step(next(dist)).items()}
            cbs.on_train_batch_end(b, logs)
            if model.stop_training:
                break
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return logs


# -- train -------------------------------------------------------------------------


def _read_state(ckpt: Path) -> dict | None:
    state_file = ckpt / STATE_FILE
    if not (state_file.is_file() and (ckpt / MODEL_FILE).is_file()):
        return None
    try:
        return json.loads(state_file.read_text())
    except json.JSONDecodeError as e:
        raise DataError(
            f"{state_file}: not valid JSON ({e}); remove {ckpt} to start over"
        ) from None


@dataclasses.dataclass
class _Plan:
    """What one `train` call will do: its config, epochs and steps per epoch."""

    cfg: FitConfig
    epochs: int
    steps_per_epoch: int
    out_dir: Path
    config: dict  # recorded in summary.json

    @property
    def model(self) -> str:
        return self.cfg.model

    @property
    def seed(self) -> int:
        return self.cfg.seed

    @property
    def batch_size(self) -> int:
        return self.cfg.batch_size

    @property
    def final(self) -> Path:
        return self.out_dir / MODEL_FILE

    @property
    def ckpt(self) -> Path:
        return self.out_dir / CHECKPOINT_DIR


@dataclasses.dataclass
class Trained:
    """What `train` returns: the kept model, the summary and the run directory.

    `model` is the trainer written to OUT/model.keras (the best on
    validation when `val` was given); `summary` is OUT/summary.json. It is
    a path-like of OUT: `generate(train(...), 100, out=...)` works.
    """

    model: keras.Model
    summary: dict[str, Any]
    out: Path

    def __fspath__(self) -> str:
        # Path-like as its run directory, so every API that takes a model's
        # path (generate, fuse --gen, export_generator) takes this result.
        return os.fspath(self.out)


def train(
    data, config: FitConfig | str | None = None, *, out: str | os.PathLike, val=None,
    classifier=None, callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto", **options,
) -> Trained:  # fmt: skip
    """Trains a generative model on `data` and writes a run directory.

    Args:
        data: the real `ImageDataset`.
        config: a `FitConfig` (every option and its default), or a model
            name (one of `tfsynth.models.MODEL_NAMES`) for `FitConfig(name)`.
        out: the run directory (see the module docstring); rerun to resume.
        val: a validation `ImageDataset`: every `config.eval_every` epochs
            (default: about 10 evaluations) the samples are scored on it
            (`tfsynth.validation`); model.keras is the best by
            `config.select` ("fid" or "agreement"), last.keras the last model.
        classifier: the real-data classifier for `val` (default: the cached
            domain classifier of `data`), saved as OUT/classifier.keras.
        callbacks, verbose: extra Keras callbacks; Keras verbosity.
        **options: `FitConfig` fields that replace the config's (`dp`: a
            `tfsynth.privacy.DPConfig` trains with DP-SGD, see `tfsynth.privacy`).

    Returns:
        A `Trained`: the kept model, the summary (also OUT/summary.json), OUT.

    Example:

    >>> import numpy as np, tempfile, os
    >>> from tfsynth.data import ImageDataset
    >>> ds = ImageDataset(np.zeros((8, 16, 16, 1), np.uint8), np.arange(8) % 2)
    >>> out = os.path.join(tempfile.mkdtemp(), "run")
    >>> cfg = FitConfig("cgan", epochs=1, batch_size=4, width=4, latent_dim=8, jit_compile=False)
    >>> result = train(ds, cfg, out=out, verbose=0)
    >>> result.summary["steps"], result.model.num_classes, (result.out / "model.keras").is_file()
    (2, 2, True)
    """
    cfg = config if isinstance(config, FitConfig) else FitConfig(config or FitConfig.model)
    cfg = cfg.replace(**options)
    plan = _plan(data, cfg, out, val is not None)
    if cfg.dp is not None:
        plan.config["dp"] = privacy.resolve(cfg.dp, plan.config, len(data))
    _check_model(plan, data, val)
    _check_options(plan, val)
    monitor = _monitor(data, val, plan, classifier) if val is not None else None
    summary, chief, kept = _fit_and_keep(plan, data, monitor, callbacks, verbose)
    if monitor is not None:
        summary.update(monitor.summary(monitor.floor))
    summary.update(privacy.summary(plan.config.get("dp"), summary["steps"]))
    if chief:
        write_summary(plan.out_dir, "train", summary)
    return Trained(kept, summary, plan.out_dir)


def _fit_and_keep(plan: _Plan, data, monitor, extra_callbacks, verbose):
    """Restores or builds the trainer, fits it to the plan's end, keeps the model.

    Returns (summary, is the chief, the kept model).
    """
    cfg = plan.cfg
    with precision_policy(cfg.precision):
        strat = make_strategy(cfg.strategy)
        chief = is_chief(strat)
        # Non-chief workers of a multi-worker run write to a scratch directory.
        write_dir = plan.out_dir if chief else Path(tempfile.mkdtemp(prefix="tfsynth-worker-"))
        trainer = set_sampling(_restore_or_build(plan, data, strat), cfg.sample_steps, cfg.guidance)
        start_step = int(trainer.train_steps.numpy())
        guard = NaNGuard()
        cbs = _callbacks(plan, write_dir, guard, monitor, extra_callbacks)
        t0 = time.perf_counter()
        history = _fit_resuming(trainer, data, plan, strat, cbs, verbose)
        wall = time.perf_counter() - t0
        trainer, kept, end_step = _finalize(trainer, plan, write_dir, guard, monitor, chief)
    summary = _summary(plan, data, trainer, start_step, end_step, wall, strat, guard, history)
    return summary, chief, kept


def _summary(plan, data, trainer, start_step, end_step, wall, strat, guard, history) -> dict:
    return {
        "model": plan.model,
        "data": data.name,
        "num_examples": len(data),
        "image_shape": list(trainer.image_shape),
        "num_classes": trainer.num_classes,
        "latent_dim": trainer.latent_dim,
        "model_id": model_id(trainer),
        "steps": end_step,
        "epochs_completed": end_step // plan.steps_per_epoch,
        "resumed_from_step": start_step,
        "terminated_on_nan": guard.bad_step is not None,
        "train_seconds": round(wall, 3),
        "images_per_second": _rate(end_step - start_step, plan.batch_size, wall),
        "strategy": _strategy_name(strat),
        "num_replicas": strat.num_replicas_in_sync if strat is not None else 1,
        "final": {k: float(v[-1]) for k, v in history.items() if v},
        "config": plan.config,
        "model_path": str(plan.final),
    }


def _check_options(plan: _Plan, val) -> None:
    """The remaining option checks; clears a finished run when overwriting."""
    from tfsynth.validation import HISTORY_FILE

    cfg = plan.cfg
    if cfg.checkpoint_every is not None and cfg.checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every: must be >= 1, got {cfg.checkpoint_every}")
    every = cfg.eval_every
    if every is not None and (isinstance(every, bool) or every < 1):
        raise ConfigError(f"--eval-every: expected a positive number of epochs, got {every!r}")
    if plan.final.exists():
        if not cfg.overwrite:
            raise DataError(
                f"{plan.final}: already exists; choose another --out or pass --overwrite"
            )
        shutil.rmtree(plan.ckpt, ignore_errors=True)
        (plan.out_dir / HISTORY_FILE).unlink(missing_ok=True)


def _check_model(plan: _Plan, data, val) -> None:
    """Checks that need the model name and the data, before anything is written."""
    from tfsynth.validation import check_select

    cfg = plan.cfg
    check_image_shape(cfg.model, data.shape)
    if cfg.model in ("cgan", "cvae"):
        data.require_labels(f"train --model {cfg.model} (class-conditional)")
    if val is not None:
        data.require_labels("train --val (the validation classifier)")
    conditional = val is None or is_conditional(cfg.model, data.num_classes)
    check_select(cfg.select, conditional=conditional)
    if cfg.model != "ddpm" and (cfg.sample_steps is not None or cfg.guidance is not None):
        raise ConfigError(f"sample_steps, guidance: set a ddpm's DDIM sampler, not a {cfg.model}")
    check_sampling(cfg.sample_steps, cfg.guidance)


def _rate(steps: int, batch_size: int, wall: float) -> float:
    return round(steps * batch_size / wall, 2) if wall > 0 and steps > 0 else 0.0


def _plan(data, cfg: FitConfig, out, validated: bool) -> _Plan:
    """Checks the options that need no model; fixes epochs and steps per epoch."""
    from tfsynth.models import MODEL_NAMES

    if not isinstance(cfg.model, str) or cfg.model not in MODEL_NAMES:
        raise ConfigError(f"model: expected one of {', '.join(MODEL_NAMES)}, got {cfg.model!r}")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {cfg.batch_size}")
    steps = cfg.steps
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"steps: expected a positive step budget, got {steps!r}")
    if cfg.steps_per_epoch is not None and cfg.steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch: must be >= 1, got {cfg.steps_per_epoch}")
    if len(data) < cfg.batch_size:
        raise DataError(
            f"{data.name}: {len(data)} images is fewer than one batch of {cfg.batch_size}; lower --batch-size"
        )
    spe = len(data) // cfg.batch_size
    if steps is not None:
        spe = min(steps, max(spe, MIN_EPOCH_STEPS))
    if cfg.steps_per_epoch is not None:
        spe = min(spe, int(cfg.steps_per_epoch))
    epochs = -(-steps // spe) if steps is not None else cfg.epochs
    epochs = FitConfig.DEFAULT_EPOCHS if epochs is None else int(epochs)
    if epochs < 1:
        raise ConfigError(f"epochs: must be >= 1, got {epochs}")
    record = ("model", "steps", "batch_size", "seed", "width", "latent_dim", "learning_rate",
              "loss", "n_critic", "ema_decay", "diffaugment", "beta", "precision",
              "sample_steps", "guidance")  # fmt: skip
    config = {k: getattr(cfg, k) for k in record}
    config.update(epochs=epochs, steps_per_epoch=spe, select=cfg.select if validated else None)
    return _Plan(cfg, epochs, spe, Path(out), config)


def _monitor(data, val, plan: _Plan, classifier):
    """The validation monitor, its classifier saved as OUT/classifier.keras."""
    from tfsynth.data.dataset import check_compatible
    from tfsynth.evaluation.features import domain_classifier
    from tfsynth.validation import ValidationMonitor, check_select, fid_floor

    check_compatible(data, val)
    if tuple(val.shape) == tuple(data.shape) and val.class_names != data.class_names:
        raise DataError(
            f"{val.name}: class names {val.class_names} differ from {data.name}'s {data.class_names}"
        )
    select = plan.cfg.select
    check_select(select, conditional=is_conditional(plan.model, data.num_classes))
    if classifier is None:
        classifier, _ = domain_classifier(data, seed=plan.seed)
    elif isinstance(classifier, (str, os.PathLike)):
        classifier = keras.saving.load_model(classifier, compile=False)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    save_model(classifier, plan.out_dir / CLASSIFIER_FILE)
    every = plan.cfg.eval_every or max(1, plan.epochs // 10)
    monitor = ValidationMonitor(
        classifier,
        val,
        plan.out_dir,
        every=every,
        select=select,
        seed=plan.seed,
        epochs=plan.epochs,
    )
    monitor.floor = fid_floor(classifier, data, val, len(monitor.val_labels))
    plan.config["eval_every"] = every
    return monitor


def _restore_or_build(plan: _Plan, data, strat):
    """The trainer from OUT/checkpoint when one exists, else a new compiled one."""
    state = _read_state(plan.ckpt)
    if state is not None and (state.get("batch_size"), state.get("steps_per_epoch")) != (
        plan.batch_size,
        plan.steps_per_epoch,
    ):
        raise ConfigError(
            f"{plan.ckpt / STATE_FILE}: checkpoint was written with batch_size={state.get('batch_size')}, "
            f"steps_per_epoch={state.get('steps_per_epoch')}; rerun with those or remove {plan.ckpt}"
        )
    if state is not None and state.get("seed", plan.seed) != plan.seed:
        raise ConfigError(
            f"{plan.ckpt / STATE_FILE}: checkpoint was written with seed={state['seed']}; "
            f"rerun with it or remove {plan.ckpt}"
        )
    keras.utils.set_random_seed(plan.seed)
    scope = strat.scope() if strat is not None else contextlib.nullcontext()
    with scope:
        if state is not None:
            return keras.saving.load_model(plan.ckpt / MODEL_FILE)
        trainer = privacy.make_trainer_private(_build(plan.cfg, data), plan.config.get("dp"))
        jit = plan.cfg.jit_compile if strat is None else False
        _compile(trainer, plan.cfg.learning_rate, jit)
    return trainer


def _callbacks(plan: _Plan, write_dir: Path, guard, monitor, extra) -> list:
    # A resume must keep the seed: it fixes the data order (and the initial noise).
    meta = {
        "batch_size": plan.batch_size,
        "epochs": plan.epochs,
        "model": plan.model,
        "seed": plan.seed,
    }
    return [
        guard,
        Checkpoint(
            write_dir / CHECKPOINT_DIR, plan.steps_per_epoch, plan.cfg.checkpoint_every, guard, meta
        ),
        SampleGrid(write_dir / "samples", write_dir / "tensorboard" / "samples", plan.seed),
        *privacy.callbacks(plan.config.get("dp"), write_dir / "tensorboard" / "privacy"),
        keras.callbacks.TensorBoard(log_dir=str(write_dir / "tensorboard"), write_graph=False),
        *([monitor] if monitor is not None else []),
        *extra,
    ]


def _fit_resuming(trainer, data, plan: _Plan, strat, cbs, verbose) -> dict[str, list]:
    """Fits from the trainer's step counter to the end; a mid-epoch start finishes that epoch first.

    The batches come from `ImageDataset.epoch_batches`, whose epoch e
    depends only on (seed, e), and the trainer's noise stream was restored
    with its weights, so a resumed run trains on exactly what an
    uninterrupted one would have.
    """
    spe, epochs = plan.steps_per_epoch, plan.epochs
    start = int(trainer.train_steps.numpy())
    initial_epoch, skip = divmod(start, spe)
    history: dict[str, list] = {}
    if initial_epoch >= epochs:
        return history

    def batches(first_step, stop_step):
        return privacy.epoch_batches(
            trainer, data, plan.batch_size, spe, seed=plan.seed, start_step=first_step,
            stop_step=stop_step,
        )  # fmt: skip

    if is_multiworker(strat):
        _distributed_fit(
            trainer,
            batches(start, epochs * spe),
            strat,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=spe,
            skip=skip,
            callbacks=cbs,
            verbose=verbose,
        )
        return history
    # (first epoch, last epoch): the interrupted epoch's remainder, then the rest.
    parts = [(initial_epoch, initial_epoch + 1)] if skip else []
    parts.append((initial_epoch + (1 if skip else 0), epochs))
    for first, last in parts:
        if first >= epochs or trainer.stop_training:
            break
        first_step = max(start, first * spe)
        h = trainer.fit(
            batches(first_step, last * spe),
            epochs=last,
            initial_epoch=first,
            steps_per_epoch=spe - (first_step - first * spe),
            callbacks=cbs,
            verbose=verbose,
            shuffle=False,  # the batches are already in their order
        )
        _merge(history, h.history)
    return history


def _finalize(trainer, plan: _Plan, write_dir: Path, guard, monitor, chief):
    """Picks the model to keep (last good, or best on validation) and writes it.

    Returns (the last trainer, the kept model, the last step).
    """
    last_ckpt = write_dir / CHECKPOINT_DIR / MODEL_FILE
    if guard.bad_step is not None:
        if not last_ckpt.is_file():
            raise TrainingDiverged(
                f"{plan.out_dir}: losses became NaN/inf at step {guard.bad_step} before the first checkpoint; lower --lr"
            )
        trainer = keras.saving.load_model(last_ckpt)
    end_step = int(trainer.train_steps.numpy())
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        return trainer, trainer, end_step
    keep = trainer
    if monitor is not None and monitor.best_path.is_file():
        save_model(trainer, plan.out_dir / LAST_FILE)
        keep = keras.saving.load_model(monitor.best_path)
    save_model(keep, plan.final)
    noise, labels = _sample_inputs(keep, plan.seed)
    from tfsynth.plotting import save_figure

    steps = int(keep.train_steps.numpy())
    _, fig = sample_grid_figure(keep, noise, labels, title=f"{plan.model}: {steps} steps")
    save_figure(fig, plan.out_dir / "samples" / "final.png")
    shutil.rmtree(plan.ckpt, ignore_errors=True)
    return trainer, keep, end_step


def _strategy_name(strat) -> str:
    if strat is None:
        return "none"
    # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy underneath.
    return "MultiWorkerMirroredStrategy" if is_multiworker(strat) else type(strat).__name__


def _merge(history, new):
    for k, v in new.items():
        history.setdefault(k, []).extend(v)


def _build(cfg: FitConfig, data):
    """The uncompiled trainer; options left None take the trainer's defaults."""
    kwargs: dict[str, Any] = {
        "class_names": data.class_names,
        "class_counts": data.class_counts().tolist(),
        "seed": cfg.seed,
    }
    if cfg.model in ("vae", "cvae"):
        given = {"beta": cfg.beta}
    elif cfg.model == "ddpm":
        given = {"ema_decay": cfg.ema_decay}
    else:
        given = {"ema_decay": cfg.ema_decay, "diffaugment": cfg.diffaugment,
                 "n_critic": cfg.n_critic, "loss": cfg.loss}  # fmt: skip
    kwargs.update({k: v for k, v in given.items() if v is not None})
    return build_model(
        cfg.model, data.shape, data.num_classes, latent_dim=cfg.latent_dim, width=cfg.width,
        **kwargs,
    )  # fmt: skip


def _compile(trainer, learning_rate: float | None, jit_compile) -> None:
    """Compiles with the trainer's default optimizer(s), at `learning_rate` when given."""
    from tfsynth.models import GAN

    if isinstance(trainer, GAN):
        trainer.compile(
            d_optimizer=trainer.default_optimizer(learning_rate),
            g_optimizer=trainer.default_optimizer(learning_rate),
            jit_compile=jit_compile,
        )
    else:
        trainer.compile(optimizer=trainer.default_optimizer(learning_rate), jit_compile=jit_compile)
