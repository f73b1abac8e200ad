"""Checking a generator on the validation split while it trains (Step 3).

Every few epochs `ValidationMonitor` samples the generator with fixed noise
and the validation split's labels, and scores the samples with the
real-data classifier (the domain classifier of `tfsynth.evaluation`):

- ``val/fid``: FID between the samples and the validation images on the
  classifier's ``features`` layer;
- ``val/label_agreement``: the share of samples the classifier assigns to
  their conditioning label (conditional models only).

Both go to TensorBoard (``tensorboard/validation``), and the best model by
the chosen metric is kept, so training for longer than needed cannot hurt.
The test split never enters here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfsynth.data.dataset import ImageDataset
from tfsynth.errors import ConfigError
from tfsynth.evaluation.classifier import FEATURE_LAYER
from tfsynth.evaluation.distribution import feature_statistics, frechet_distance
from tfsynth.io import atomic_write_json

SELECT = ("fid", "agreement")
HISTORY_FILE = "validation.json"
# A generator whose best validation label agreement stays below this (or,
# unconditional, whose FID stays above FAILED_FID_FACTOR times the
# real-vs-real floor) has not learned the data: it is reported as failed
# and left out of D'.
FAILED_AGREEMENT = 0.5
FAILED_FID_FACTOR = 20.0


def check_select(select: str, conditional: bool) -> str:
    """Validates `--select`; agreement needs a class-conditional model."""
    if select not in SELECT:
        raise ConfigError(f"--select: expected one of {', '.join(SELECT)}, got {select!r}")
    if select == "agreement" and not conditional:
        raise ConfigError(
            "--select agreement: needs a class-conditional model (cgan, cvae, or ddpm on "
            "labelled data); use --select fid"
        )
    return select


class SampleScorer:
    """Scores uint8 samples against a reference set with one classifier pass.

    Args:
        classifier: a tfsynth classifier (softmax output, a "features" layer).
        reference: the real images (uint8 NHWC) the FID compares against.

    Example:

    >>> from tfsynth.evaluation.classifier import build_classifier
    >>> clf = build_classifier((16, 16, 1), 2, width=4)
    >>> ref = np.random.default_rng(0).integers(0, 255, (32, 16, 16, 1), dtype=np.uint8)
    >>> scorer = SampleScorer(clf, ref)
    >>> s = scorer(ref, np.zeros(32, np.int64))
    >>> sorted(s), round(s["fid"], 6) == 0.0
    (['fid', 'label_agreement'], True)
    """

    def __init__(self, classifier: keras.Model, reference: np.ndarray):
        self.model = keras.Model(
            classifier.inputs, [classifier.get_layer(FEATURE_LAYER).output, classifier.output]
        )
        feats, _ = self._predict(reference)
        self.reference_stats = feature_statistics(feats)

    def _predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = tf.data.Dataset.from_tensor_slices(images).batch(256)
        x = x.map(lambda b: tf.cast(b, tf.float32) / 127.5 - 1.0)
        feats, probs = self.model.predict(x, verbose=0)
        return np.asarray(feats, np.float64), np.asarray(probs)

    def __call__(self, images: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
        feats, probs = self._predict(images)
        out = {"fid": frechet_distance(*self.reference_stats, *feature_statistics(feats))}
        if labels is not None:
            out["label_agreement"] = float(np.mean(probs.argmax(1) == labels))
        return out


class ValidationMonitor(keras.callbacks.Callback):
    """Scores the generator on the validation split every `every` epochs.

    Writes ``val/fid`` and ``val/label_agreement`` scalars (step = training
    step) to `log_dir`, keeps the best model by `select` at `best_path`,
    and a history at ``OUT/validation.json`` that survives a resume.

    Args:
        classifier: the real-data classifier.
        val: the validation split (labelled like the training data).
        out_dir: the training run directory.
        every: evaluate every N epochs (and after the last one).
        num_samples: samples per evaluation (at most the validation size).
        select: "fid" (lower is better) or "agreement" (higher is better).
        seed: seeds the fixed noise.

    Example:

    >>> from tfsynth.evaluation.classifier import build_classifier
    >>> val = ImageDataset(np.zeros((8, 16, 16, 1), np.uint8), np.arange(8) % 2)
    >>> mon = ValidationMonitor(build_classifier((16, 16, 1), 2, width=4), val, "/tmp/v")
    >>> mon.select, mon.every
    ('fid', 1)
    """

    def __init__(
        self,
        classifier: keras.Model,
        val: ImageDataset,
        out_dir: str | os.PathLike,
        *,
        every: int = 1,
        num_samples: int = 1000,
        select: str = "fid",
        seed: int = 0,
        epochs: int | None = None,
    ):
        super().__init__()
        if every < 1:
            raise ConfigError(f"--eval-every: expected a positive number of epochs, got {every}")
        self.select = check_select(select, conditional=True)
        self.every = every
        self.epochs = epochs
        self.out_dir = Path(out_dir)
        self.best_path = self.out_dir / "checkpoint" / "best.keras"
        self.seed = seed
        n = min(num_samples, len(val))
        images, labels = val.numpy()
        self.scorer = SampleScorer(classifier, images[:n]) if n else None
        self.val_labels = labels[:n].astype(np.int64)
        self.history: list[dict[str, Any]] = []
        self.floor: float | None = None  # real-vs-real FID, set by the caller
        self._writer = None

    @property
    def history_path(self) -> Path:
        return self.out_dir / HISTORY_FILE

    def on_train_begin(self, logs=None):
        if self.history_path.is_file():  # resumed: keep the evaluations made before
            self.history = json.loads(self.history_path.read_text())["history"]
        self._writer = tf.summary.create_file_writer(
            str(self.out_dir / "tensorboard" / "validation")
        )

    def on_epoch_end(self, epoch, logs=None):
        last = self.epochs is not None and epoch + 1 >= self.epochs
        if self.scorer is None or not ((epoch + 1) % self.every == 0 or last):
            return
        step = int(self.model.train_steps.numpy())
        if any(h["step"] == step for h in self.history):
            return
        scores = self.score(self.model)
        entry = {"epoch": epoch + 1, "step": step, **scores}
        with self._writer.as_default():
            for k, v in scores.items():
                tf.summary.scalar(f"val/{k}", v, step=step)
        self._writer.flush()
        if self._is_best(entry):
            from tfsynth.training import save_model

            save_model(self.model, self.best_path)
            entry["best"] = True
        self.history.append(entry)
        atomic_write_json(self.history_path, {"select": self.select, "history": self.history})

    def score(self, model) -> dict[str, float]:
        """val/fid (and val/label_agreement) of `model`'s fixed-noise samples."""
        from tfsynth.data.pipeline import to_uint8
        from tfsynth.models.sampling import noise_for

        n = len(self.val_labels)
        noise = noise_for(self.seed + 7_919, np.arange(n), model.latent_dim)
        labels = self.val_labels if model.num_classes else None
        chunks = [
            model.generate(noise[i : i + 256], None if labels is None else labels[i : i + 256])
            for i in range(0, n, 256)
        ]
        images = np.concatenate([to_uint8(c).numpy() for c in chunks])
        return self.scorer(images, labels)

    def _is_best(self, entry: dict[str, Any]) -> bool:
        prior = [h for h in self.history if h.get("best")]
        if not prior:
            return True
        best = prior[-1]
        if self.select == "fid":
            return entry["fid"] < best["fid"]
        return entry["label_agreement"] > best["label_agreement"]

    def best(self) -> dict[str, Any] | None:
        """The best evaluation so far (None before the first)."""
        prior = [h for h in self.history if h.get("best")]
        return prior[-1] if prior else None

    def summary(self, floor: float | None = None) -> dict[str, Any]:
        """Fields for the training summary: the winner, the history, failure."""
        best = self.best()
        if best is None:
            return {}
        out: dict[str, Any] = {
            "val_select": self.select,
            "val_best_epoch": best["epoch"],
            "val_best_step": best["step"],
            "val_fid": best["fid"],
            "val_evaluations": len(self.history),
        }
        if "label_agreement" in best:
            out["val_label_agreement"] = best["label_agreement"]
        out["generator_failed"], out["generator_failed_reason"] = failed(best, floor)
        if floor is not None:
            out["val_fid_floor"] = floor
        return out


def failed(best: dict[str, Any], floor: float | None) -> tuple[bool, str]:
    """Whether validation shows the generator failed, and why (one line)."""
    agreement = best.get("label_agreement")
    if agreement is not None and agreement < FAILED_AGREEMENT:
        return True, (
            f"validation label agreement {agreement:.2f} < {FAILED_AGREEMENT}: "
            "the classifier does not recognize the requested classes"
        )
    if floor is not None and floor > 0 and best["fid"] > FAILED_FID_FACTOR * floor:
        return True, (
            f"validation FID {best['fid']:.1f} is over {FAILED_FID_FACTOR:g}x the "
            f"real-vs-real floor {floor:.2f}"
        )
    return False, ""


def fid_floor(classifier: keras.Model, train: ImageDataset, val: ImageDataset, n: int) -> float:
    """FID between real training and validation images: the best a generator can do."""
    n = min(n, len(train), len(val))
    scorer = SampleScorer(classifier, val.images[:n])
    return scorer(train.images[:n], None)["fid"]
