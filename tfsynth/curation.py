"""Curated generated data: keep a sample only when the real-data classifier agrees.

The classifier trained on the real training split (`tfsynth.evaluation.
classifier`) scores every generated sample. A sample of wanted class y is
kept when the classifier's most probable class is y with probability
(confidence) at least `min_confidence`.

Rejected samples are replaced from later noise indices, so class counts
stay exact and shards stay independent (`replace_rejected`): generated
example j that is rejected is replaced by generator example j + t * n
(t = 1, 2, ...; n is the length of the whole sequence, so candidates never
collide with another example's own index), the first one accepted. The
memorization filter of `tfsynth fuse` uses the same loop; both checks
combine (a candidate must pass both).

An unconditional model gets its labels from the same classifier under the
same threshold (pseudo-labels): example j wants the class y_j of the
planned sequence, and its candidates j + t * n are tried until the
classifier predicts y_j with confidence >= the threshold, so every model
can give exact class counts.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.errors import ConfigError, DataError

CLASSIFIER_FILE = "classifier.keras"
# Replacement rounds before a class is given up: a conditional model's
# candidates already aim at the class; an unconditional model's hit it by chance.
MAX_ROUNDS_CONDITIONAL = 20
MAX_ROUNDS_UNCONDITIONAL = 60
# The classifier always sees batches of this many rows (padded), so a sample's
# confidence never depends on which other samples share its batch.
PREDICT_BATCH = 256


def check_min_confidence(value: Any) -> float:
    """`value` as a float in (0, 1); else ConfigError naming --min-confidence."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < 1
    if not ok:
        raise ConfigError(f"--min-confidence: expected a number in (0, 1), got {value!r}")
    return float(value)


def default_classifier_path(model) -> Path:
    """The classifier saved in a generator's run directory (next to model.keras).

    `model` is a path (or `train`'s result); a bare trainer has no run
    directory, so curating one needs an explicit classifier.
    """
    import keras

    if isinstance(model, keras.Model):
        raise ConfigError(
            f"model {model.name!r}: curating a model object needs classifier= "
            "(a .keras path or a keras.Model)"
        )
    p = Path(model)
    return (p if p.is_dir() else p.parent) / CLASSIFIER_FILE


class Curator:
    """Keeps a generated image when the classifier predicts its label confidently.

    Args:
        classifier: a Keras classifier as built by
            `tfsynth.evaluation.classifier` (float input in [-1, 1],
            softmax output (N, K)).
        min_confidence: the threshold t, 0 < t < 1.
        name: how messages and provenance name the classifier (its path).

    `curator(images, labels)` returns ``(keep, confidence)``: confidence is
    the classifier's probability of the given label (float32), and keep is
    true where that label is also the most probable class and confidence
    >= t.

    Example:

    >>> import numpy as np
    >>> from tfsynth.evaluation.classifier import build_classifier
    >>> curator = Curator(build_classifier((16, 16, 1), 3, width=4), min_confidence=0.9)
    >>> keep, confidence = curator(np.zeros((4, 16, 16, 1), np.uint8), np.array([0, 1, 2, 0]))
    >>> keep.tolist(), confidence.dtype, bool((confidence > 0).all())
    ([False, False, False, False], dtype('float32'), True)
    """

    def __init__(self, classifier, min_confidence: float, *, name: str = "classifier"):
        import keras

        if not isinstance(classifier, keras.Model):
            raise DataError(f"{name}: expected a Keras classifier, got {type(classifier).__name__}")
        out = classifier.output_shape
        if not isinstance(out, tuple) or len(out) != 2 or not out[-1] or out[-1] < 2:
            raise DataError(f"{name}: expected a classifier with (N, K) outputs, got {out}")
        self.classifier = classifier
        self.min_confidence = check_min_confidence(min_confidence)
        self.name = str(name)

    @property
    def num_classes(self) -> int:
        return int(self.classifier.output_shape[-1])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.classifier.input_shape[1:])

    def check_compatible(self, image_shape: Sequence[int], class_names: Sequence[str], where: str):
        """DataError naming `where` unless the classifier fits the images and classes."""
        if self.image_shape != tuple(image_shape):
            raise DataError(
                f"{self.name}: the classifier takes {self.image_shape} images but {where} makes "
                f"{tuple(image_shape)}; pass the classifier of this data with --classifier"
            )
        if self.num_classes != len(class_names):
            raise DataError(
                f"{self.name}: the classifier has {self.num_classes} classes but {where} has "
                f"{len(class_names)}; pass the classifier of this data with --classifier"
            )

    def probabilities(self, images_uint8: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K) float32, in padded batches of `PREDICT_BATCH`."""
        from tfsynth.evaluation.classifier import predict_proba

        images = np.asarray(images_uint8)
        n = len(images)
        if n == 0:
            return np.zeros((0, self.num_classes), np.float32)
        padded = np.zeros((-(-n // PREDICT_BATCH) * PREDICT_BATCH, *images.shape[1:]), images.dtype)
        padded[:n] = images
        probs = predict_proba(self.classifier, padded, batch_size=PREDICT_BATCH)
        return np.asarray(probs[:n], np.float32)

    def __call__(self, images_uint8: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
        labels = np.asarray(labels, np.int64)
        if len(labels) != len(images_uint8):
            raise DataError(f"{len(images_uint8)} images but {len(labels)} labels")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(f"labels must lie in [0, {self.num_classes - 1}] for {self.name}")
        probs = self.probabilities(images_uint8)
        confidence = probs[np.arange(len(labels)), labels]
        keep = (probs.argmax(axis=1) == labels) & (confidence >= self.min_confidence)
        return keep, confidence.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"classifier": self.name, "min_confidence": self.min_confidence}


def load_curator(path_or_model, min_confidence: float) -> Curator:
    """A `Curator` from a classifier `.keras` path or a `keras.Model`.

    The threshold is checked first (ConfigError); a missing or unreadable
    file is a DataError naming the path.
    """
    import keras

    t = check_min_confidence(min_confidence)
    if isinstance(path_or_model, keras.Model):
        return Curator(path_or_model, t, name=f"keras.Model {path_or_model.name!r}")
    path = Path(path_or_model)
    hint = (
        "train the generator with `tfsynth train --val ...` (it saves classifier.keras next to "
        "model.keras) or pass --classifier PATH"
    )
    if not path.is_file():
        raise DataError(f"{path}: classifier file not found; {hint}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # a corrupt zip, a foreign file: one line for the user
        why = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise DataError(f"{path}: not a loadable classifier .keras file ({why}); {hint}") from None
    return Curator(model, t, name=str(path))


def replace_rejected(
    batch: Mapping[str, np.ndarray],
    check: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]],
    regenerate: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]],
    *,
    stride: int,
    max_rounds: int,
    exhausted: Callable[[int, int], Exception],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Replaces the rejected rows of a generated batch from later noise indices.

    Row r is generator example j = ``batch["gen_index"][r]`` with wanted
    label ``batch["label"][r]``. While `check` rejects it, round t
    (1, 2, ..., `max_rounds`) tries candidate j + t * `stride` with the same
    label; all rows still rejected in round t are drawn in one `regenerate`
    call. The accepted candidate takes the row's place (its own
    ``gen_index`` says which one it is). A row's result depends only on (j,
    label), never on its batch, so shards stay independent.

    Args:
        batch: dict of per-row arrays with "image", "label" and "gen_index".
        check: ``(images, labels) -> (keep, columns)``; `columns` are
            per-row arrays added to the batch (e.g. "confidence").
        regenerate: ``(indices, labels) -> batch`` of those generator examples.
        stride: n, the length of the whole sequence.
        max_rounds: rounds before giving up.
        exhausted: ``(label, j) -> exception`` raised for a row still
            rejected after `max_rounds`.

    Returns:
        (the completed batch (a copy), rejected candidates per row (int64)).

    Example:

    >>> import numpy as np
    >>> batch = {"image": np.array([5, 1, 7]), "label": np.zeros(3, np.int64),
    ...          "gen_index": np.array([0, 1, 2])}
    >>> odd = lambda images, labels: (images % 2 == 1, {})
    >>> again = lambda idx, labels: {"image": idx * 10 + 1, "label": labels, "gen_index": idx}
    >>> out, rejected = replace_rejected(batch, odd, again, stride=3, max_rounds=2,
    ...                                  exhausted=lambda y, j: ValueError(j))
    >>> out["image"].tolist(), out["gen_index"].tolist(), rejected.tolist()
    ([5, 1, 7], [0, 1, 2], [0, 0, 0])
    >>> batch["image"] = np.array([5, 2, 7])
    >>> out, rejected = replace_rejected(batch, odd, again, stride=3, max_rounds=2,
    ...                                  exhausted=lambda y, j: ValueError(j))
    >>> out["image"].tolist(), out["gen_index"].tolist(), rejected.tolist()
    ([5, 41, 7], [0, 4, 2], [0, 1, 0])
    """
    out = {k: np.array(v, copy=True) for k, v in batch.items()}
    keep, columns = check(out["image"], out["label"])
    out.update({k: np.array(v, copy=True) for k, v in columns.items()})
    base = np.asarray(out["gen_index"], np.int64).copy()
    rejected = np.zeros(len(base), np.int64)
    todo = np.flatnonzero(~np.asarray(keep, bool))
    for t in range(1, max_rounds + 1):
        if not len(todo):
            break
        rejected[todo] += 1
        labels = out["label"][todo]
        cand = regenerate(base[todo] + t * stride, labels)
        ok, columns = check(cand["image"], labels)
        ok = np.asarray(ok, bool)
        cand = {**cand, **columns}
        for k in out:
            out[k][todo[ok]] = np.asarray(cand[k])[ok]
        todo = todo[~ok]
    if len(todo):
        r = int(todo[0])
        raise exhausted(int(out["label"][r]), int(base[r]))
    return out, rejected


def kept_fractions(
    kept_per_class: Sequence[int], rejected_per_class: Sequence[int], class_names: Sequence[str]
) -> dict[str, Any]:
    """Candidate counts and kept fractions (kept / (kept + rejected)), overall and per class.

    A class without candidates has fraction None.

    >>> kept_fractions([2, 0], [6, 0], ["a", "b"])["kept_fraction_per_class"]
    {'a': 0.25, 'b': None}
    """
    kept = np.asarray(kept_per_class, np.int64)
    rejected = np.asarray(rejected_per_class, np.int64)
    cand = kept + rejected
    return {
        "num_candidates": int(cand.sum()),
        "num_rejected": int(rejected.sum()),
        "kept_fraction": float(kept.sum() / cand.sum()) if cand.sum() else None,
        "kept_fraction_per_class": {
            str(name): (float(k / c) if c else None) for name, k, c in zip(class_names, kept, cand)
        },
        "rejected_per_class": {str(name): int(r) for name, r in zip(class_names, rejected)},
    }


class Resampler:
    """Generated examples with wanted labels; rejected ones replaced (`replace_rejected`).

    `batches(start, labels, batch_size)` yields generator examples start,
    start + 1, ... with the wanted `labels`, each replaced by a later
    candidate while the memorization filter (`keep_fn(images) -> bool
    mask`) or the curator rejects it. An unconditional model's wanted
    labels are pseudo-labels: only the curator can make them true, so it
    needs one (unless there is one class). `rejected_per_class` and
    `kept_per_class` count what it did. `tfsynth generate --curate` and the
    fusion's `GeneratorSource` both use it.

    Args:
        model: a tfsynth trainer (GAN or VAE).
        class_names: the classes of the wanted labels.
        seed: the base seed of the noise.
        stride: n, the length of the whole sequence (see `replace_rejected`).
        curator: an optional `Curator`.
        keep_fn: an optional memorization filter.
        where: names the model in messages.

    Example:

    >>> import numpy as np
    >>> from tfsynth.models import build_model
    >>> m = build_model("cgan", (16, 16, 1), num_classes=2, latent_dim=4, width=4)
    >>> r = Resampler(m, ["a", "b"], seed=0, stride=6, keep_fn=lambda im: np.ones(len(im), bool))
    >>> [b["gen_index"].tolist() for b in r.batches(0, np.array([1, 0, 1, 1, 0, 0]), 4)]
    [[0, 1, 2, 3], [4, 5]]
    >>> r.kept_per_class.tolist(), r.rejected_per_class.tolist()
    ([3, 3], [0, 0])
    """

    def __init__(
        self,
        model,
        class_names: Sequence[str],
        *,
        seed: int,
        stride: int,
        curator: Curator | None = None,
        keep_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        where: str = "generator",
    ):
        self.model = model
        self.class_names = list(class_names)
        self.conditional = bool(model.num_classes)
        if not self.conditional and curator is None and len(self.class_names) > 1:
            raise ConfigError(
                f"{where}: an unconditional model needs a classifier (--min-confidence) to "
                "label its images"
            )
        self.seed = int(seed)
        self.stride = max(int(stride), 1)
        self.curator = curator
        self.keep_fn = keep_fn
        self.where = where
        self.max_rounds = (
            MAX_ROUNDS_CONDITIONAL
            if self.conditional or curator is None
            else MAX_ROUNDS_UNCONDITIONAL
        )
        k = len(self.class_names)
        self.kept_per_class = np.zeros(k, np.int64)
        self.rejected_per_class = np.zeros(k, np.int64)

    @property
    def active(self) -> bool:
        """True when some check can reject a sample."""
        return self.curator is not None or self.keep_fn is not None

    def batches(self, start: int, labels, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Examples start .. start + len(labels) - 1 (see the class docstring)."""
        from tfsynth.models.sampling import generate_at, generate_batches

        labels = np.asarray(labels, np.int64)
        k = len(self.class_names)

        def regenerate(indices, wanted):
            out = generate_at(
                self.model,
                indices,
                wanted if self.conditional else None,
                seed=self.seed,
                batch_size=batch_size,
            )
            return {**out, "label": np.asarray(wanted, np.int64)}

        for batch in generate_batches(
            self.model,
            len(labels),
            labels=labels if self.conditional else None,
            seed=self.seed,
            start=start,
            batch_size=batch_size,
        ):
            batch["label"] = labels[batch["gen_index"] - start]
            if self.active:
                batch, rejected = replace_rejected(
                    batch,
                    self._check,
                    regenerate,
                    stride=self.stride,
                    max_rounds=self.max_rounds,
                    exhausted=self._exhausted,
                )
                self.rejected_per_class += np.bincount(
                    batch["label"], weights=rejected, minlength=k
                ).astype(np.int64)
            self.kept_per_class += np.bincount(batch["label"], minlength=k)
            yield batch

    def _check(self, images, labels):
        keep = np.ones(len(images), bool)
        columns = {}
        if self.keep_fn is not None:
            keep &= np.asarray(self.keep_fn(images), bool)
        if self.curator is not None:
            ok, columns["confidence"] = self.curator(images, labels)
            keep &= ok
        return keep, columns

    def _exhausted(self, label: int, index: int) -> DataError:
        name, tries = self.class_names[label], self.max_rounds + 1
        if self.curator is None:
            return DataError(
                f"{self.where}: the memorization filter rejected {tries} samples in a row for "
                f"gen example {index}; the threshold is too strict"
            )
        also = " or raise --memorization-threshold" if self.keep_fn is not None else ""
        return DataError(
            f"{self.where}: the classifier rejects class {name!r}: {tries} candidates in a row "
            f"for example {index} were not predicted as {name!r} with confidence >= "
            f"{self.curator.min_confidence}; lower --min-confidence{also}"
        )

    def report(self) -> dict[str, Any]:
        """What the checks did so far (see `kept_fractions`), with the threshold."""
        out = kept_fractions(self.kept_per_class, self.rejected_per_class, self.class_names)
        if self.curator is not None:
            out = {**self.curator.describe(), **out}
        return out


__all__ = [
    "CLASSIFIER_FILE",
    "MAX_ROUNDS_CONDITIONAL",
    "MAX_ROUNDS_UNCONDITIONAL",
    "Curator",
    "Resampler",
    "check_min_confidence",
    "default_classifier_path",
    "kept_fractions",
    "load_curator",
    "replace_rejected",
]
