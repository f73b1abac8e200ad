"""`pseudo_label`: labels unlabelled images from a few labelled ones (D_pseudo).

In the SSL feature space, a first labelling (label propagation on the
k-NN graph of all images by default; or k-NN votes of the labelled
images, or a linear probe trained on them), then one round of
self-training: a linear probe (the student) trained on the labelled
images plus the first labels that reached `seed_confidence` relabels
every unlabelled image, and those it labels with confidence >=
`min_confidence` are kept.

```
OUT/data-*.tfrecord   kept images, their pseudo-labels and the provenance columns
                      source ("pseudo"), source_index (row in the unlabelled set),
                      confidence, method, gen_seed / gen_index (-1), model_id, policy ("")
OUT/manifest.json     shape, classes, counts, checksums; metadata.pseudo_label
OUT/summary.json      kept fraction (overall and per class); with true labels
                      (an unlabelled set that has them), pseudo-label accuracy
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.errors import ConfigError, DataError

METHODS = ("propagate", "knn", "linear")
STUDENT_L2 = 1e-6  # weak decay: the student must be confident where the data is clear
FEATURES = {
    "source": {"dtype": "string", "shape": []},
    "source_index": {"dtype": "int64", "shape": []},
    "confidence": {"dtype": "float32", "shape": []},
    "method": {"dtype": "string", "shape": []},
    "gen_seed": {"dtype": "int64", "shape": []},
    "gen_index": {"dtype": "int64", "shape": []},
    "model_id": {"dtype": "string", "shape": []},
    "policy": {"dtype": "string", "shape": []},
}


@dataclass
class PseudoLabelConfig:
    """What `tfsynth pseudo-label` does (the CLI builds it; `pseudo_label` takes it).

    `ssl` is a `tfsynth ssl` run directory; without one, an encoder is
    trained first on the labelled and unlabelled images together (labels
    unused) with `ssl_epochs` epochs, into OUT-ssl/.

    Example:

    >>> cfg = PseudoLabelConfig(labeled="mnist-10k[:100]", unlabeled="mnist-10k[100:200]")
    >>> cfg.validate().method, cfg.min_confidence
    ('propagate', 0.9)
    """

    labeled: str = ""
    unlabeled: str = ""
    ssl: str | None = None
    method: str = "propagate"
    k: int = 10
    min_confidence: float = 0.9
    seed_confidence: float = 0.7
    self_training: bool = True
    ssl_epochs: int = 30
    seed: int = 0

    def validate(self) -> PseudoLabelConfig:
        if self.method not in METHODS:
            raise ConfigError(f"method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"k: expected a positive integer, got {self.k!r}")
        for flag, c in (
            ("--min-confidence", self.min_confidence),
            ("--seed-confidence", self.seed_confidence),
        ):
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c < 1:
                raise ConfigError(f"{flag}: expected a number in (0, 1), got {c!r}")
        if not isinstance(self.ssl_epochs, int) or self.ssl_epochs < 1:
            raise ConfigError(f"ssl_epochs: expected a positive integer, got {self.ssl_epochs!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def method_name(self) -> str:
        """The `method` column: e.g. "knn+self-training"."""
        return self.method + ("+self-training" if self.self_training else "")


def pseudo_label(
    config: PseudoLabelConfig,
    out: str | os.PathLike,
    *,
    labeled=None,
    unlabeled=None,
    encoder=None,
    overwrite: bool = False,
    log=None,
) -> dict[str, Any]:
    """Pseudo-labels `config.unlabeled` from `config.labeled` into dataset directory `out`.

    Args:
        config: the settings (specs, SSL run, method, threshold).
        out: the new dataset directory (written atomically).
        labeled, unlabeled: `ImageDataset`s instead of the specs.
        encoder: a Keras encoder instead of `config.ssl`.
        overwrite: replace an existing `out`.
        log: optional print-like function.

    Returns:
        The summary (also OUT/summary.json).

    Raises:
        DataError: an unlabelled `labeled` set, a labelled class without
            images, sets of different shapes, nothing confident enough.

    Example:

    >>> import numpy as np, tempfile
    >>> from tfsynth.data import ImageDataset
    >>> from tfsynth.selfsup.networks import build_encoder
    >>> rng = np.random.default_rng(0)
    >>> lab = ImageDataset(rng.integers(0, 255, (6, 16, 16, 1), np.uint8), np.arange(6) % 2)
    >>> unl = ImageDataset(rng.integers(0, 255, (5, 16, 16, 1), np.uint8))
    >>> cfg = PseudoLabelConfig(k=3, min_confidence=0.01)
    >>> s = pseudo_label(cfg, tempfile.mkdtemp() + "/p", labeled=lab, unlabeled=unl,
    ...                  encoder=build_encoder((16, 16, 1), width=2, feature_dim=4))
    >>> s["num_unlabeled"], s["num_kept"]
    (5, 5)
    """
    config.validate()
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; choose another --out or pass --overwrite")
    labeled, unlabeled, truth = _inputs(config, labeled, unlabeled)
    t0 = time.perf_counter()
    encoder = encoder if encoder is not None else _encoder(config, out, labeled, unlabeled, log)
    _check_encoder(encoder, labeled)
    from tfsynth.selfsup.features import embed

    fl, fu = embed(encoder, labeled.images), embed(encoder, unlabeled.images)
    result = _label(config, fl, labeled.labels, fu, labeled.num_classes)
    keep = result["confidence"] >= config.min_confidence
    if not keep.any():
        raise DataError(
            f"{unlabeled.name}: no image reached confidence {config.min_confidence}; "
            "lower --min-confidence"
        )
    summary = _summary(config, labeled, unlabeled, truth, result, keep, encoder)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    _write(out, config, labeled, unlabeled, result, keep, summary, overwrite)
    return {**summary, "out": str(out)}


def _inputs(config: PseudoLabelConfig, labeled, unlabeled):
    """(labelled, unlabelled, true labels or None), checked together."""
    from tfsynth.data import load_dataset

    if labeled is None:
        if not config.labeled:
            raise ConfigError("--labeled: a labelled dataset spec is required")
        labeled = load_dataset(config.labeled)
    if unlabeled is None:
        if not config.unlabeled:
            raise ConfigError("--unlabeled: a dataset spec is required")
        unlabeled = load_dataset(config.unlabeled)
    return labeled, unlabeled, check_pair(labeled, unlabeled)


def check_pair(labeled, unlabeled, what: str = "pseudo-label --labeled"):
    """Raises DataError (one line) unless `unlabeled` can be pseudo-labelled from `labeled`.

    `labeled` must be labelled with every class present and both must have
    the same image shape; an `unlabeled` set that has labels must have the
    same classes. Returns its true labels (None when it has none): they
    only score the pseudo-labels, never make them.

    >>> from tfsynth.data import ImageDataset
    >>> lab = ImageDataset(np.zeros((2, 8, 8, 1), np.uint8), [0, 1], name="lab")
    >>> check_pair(lab, ImageDataset(np.zeros((3, 8, 8, 3), np.uint8), name="unl"))
    Traceback (most recent call last):
    ...
    tfsynth.errors.DataError: unl: images are 8x8x3 but lab has 8x8x1; shapes must match
    """
    labeled.require_labels(what)
    if tuple(labeled.shape) != tuple(unlabeled.shape):
        raise DataError(
            f"{unlabeled.name}: images are {'x'.join(map(str, unlabeled.shape))} but "
            f"{labeled.name} has {'x'.join(map(str, labeled.shape))}; shapes must match"
        )
    counts = labeled.class_counts()
    if (counts == 0).any():
        missing = labeled.class_names[int(np.argmin(counts))]
        raise DataError(
            f"{labeled.name}: class {missing!r} has no labelled images; every class needs at "
            "least one"
        )
    truth = None
    if unlabeled.labeled:
        if unlabeled.class_names != labeled.class_names:
            raise DataError(
                f"{unlabeled.name}: its class names differ from {labeled.name}'s; pass it "
                "with matching classes or without labels"
            )
        truth = unlabeled.labels  # only for the accuracy report, never for labelling
    return truth


def _encoder(config: PseudoLabelConfig, out: Path, labeled, unlabeled, log):
    from tfsynth.selfsup.train import SSLConfig, load_ssl

    if config.ssl:
        return load_ssl(config.ssl).encoder
    ssl_dir = out.with_name(out.name + "-ssl")
    ssl_cfg = SSLConfig(epochs=config.ssl_epochs, seed=config.seed)
    train_ssl_on(labeled, unlabeled, ssl_cfg, ssl_dir, log=log, overwrite=True)
    config.ssl = str(ssl_dir)
    return load_ssl(ssl_dir).encoder


def train_ssl_on(labeled, unlabeled, config, out_dir, *, log=None, overwrite: bool = False):
    """`train_ssl` on the images of both sets together, labels unused; returns its summary.

    The encoder that pseudo-labels `unlabeled` from `labeled`. `config` is
    an `SSLConfig` whose `data` is replaced by the two sets' names and whose
    batch is capped at their size; rerun the same call to resume.
    """
    from tfsynth.data import ImageDataset
    from tfsynth.selfsup.train import train_ssl

    images = np.concatenate([labeled.images, unlabeled.images])
    both = ImageDataset(images, name=f"{labeled.name} + {unlabeled.name}")
    config = dataclasses.replace(
        config, data=both.name, batch_size=min(config.batch_size, len(images))
    )
    return train_ssl(config, out_dir, data=both, log=log, overwrite=overwrite)


def _check_encoder(encoder, labeled) -> None:
    shape = tuple(int(d) for d in encoder.inputs[0].shape[1:])
    if shape != tuple(labeled.shape):
        raise DataError(
            f"{labeled.name}: images are {'x'.join(map(str, labeled.shape))} but the SSL "
            f"encoder takes {'x'.join(map(str, shape))}"
        )


def _label(config: PseudoLabelConfig, fl, yl, fu, k_classes: int) -> dict[str, np.ndarray]:
    """First labelling, then (optionally) one round of self-training."""
    from tfsynth.selfsup.features import knn_proba, label_propagation, linear_probe

    if config.method == "propagate":
        probs = label_propagation(fl, yl, fu, k_classes, k=config.k)
    elif config.method == "knn":
        probs = knn_proba(fl, yl, fu, k_classes, k=config.k)
    else:
        probs = linear_probe(fl, yl, k_classes)(fu)
    first = {"label": probs.argmax(1), "confidence": probs.max(1)}
    if not config.self_training:
        return {**first, "first_label": first["label"], "first_confidence": first["confidence"]}
    sel = first["confidence"] >= config.seed_confidence
    x = np.concatenate([fl, fu[sel]])
    y = np.concatenate([yl, first["label"][sel]])
    probs = linear_probe(x, y, k_classes, l2=STUDENT_L2)(fu)
    return {
        "label": probs.argmax(1),
        "confidence": probs.max(1),
        "first_label": first["label"],
        "first_confidence": first["confidence"],
    }


def encoder_id(encoder) -> str:
    """A short, stable hash of the encoder's weights (the `model_id` column)."""
    digest = hashlib.sha256()
    for w in encoder.weights:
        value = np.asarray(w.numpy())
        digest.update(str((w.path, value.shape, value.dtype.str)).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:12]


def _summary(config, labeled, unlabeled, truth, result, keep, encoder) -> dict[str, Any]:
    names = labeled.class_names
    k = len(names)
    pred = result["label"]
    predicted = np.bincount(pred, minlength=k)
    kept = np.bincount(pred[keep], minlength=k)
    s: dict[str, Any] = {
        "labeled": labeled.name,
        "unlabeled": unlabeled.name,
        "num_labeled": len(labeled),
        "num_unlabeled": len(unlabeled),
        "num_kept": int(keep.sum()),
        "kept_fraction": float(keep.mean()),
        "kept_fraction_per_class": {
            n: float(kept[c] / predicted[c]) if predicted[c] else 0.0
            for n, c in zip(names, range(k))
        },
        "class_counts": kept.tolist(),
        "method": config.method_name,
        "ssl": config.ssl or "(given encoder)",
        "model_id": encoder_id(encoder),
        "config": config.to_dict(),
    }
    if truth is not None:
        first_keep = result["first_confidence"] >= config.seed_confidence
        s["pseudo_label_accuracy"] = float(np.mean(pred[keep] == truth[keep]))
        s["accuracy_all"] = float(np.mean(pred == truth))
        s["first_accuracy_kept"] = (
            float(np.mean(result["first_label"][first_keep] == truth[first_keep]))
            if first_keep.any()
            else None
        )
        s["first_kept_fraction"] = float(first_keep.mean())
    return s


def _write(out: Path, config, labeled, unlabeled, result, keep, summary, overwrite) -> None:
    from tfsynth.data.records import MANIFEST, make_manifest, shard_name, write_shard
    from tfsynth.io import atomic_directory, atomic_write_json
    from tfsynth.summary import write_summary

    rows = np.flatnonzero(keep)
    n = len(rows)

    def batches(size: int = 1024):
        for s in range(0, n, size):
            r = rows[s : s + size]
            m = len(r)
            yield {
                "image": unlabeled.images[r],
                "label": result["label"][r].astype(np.int64),
                "source": np.full(m, "pseudo", object),
                "source_index": r.astype(np.int64),
                "confidence": result["confidence"][r].astype(np.float32),
                "method": np.full(m, config.method_name, object),
                "gen_seed": np.full(m, -1, np.int64),
                "gen_index": np.full(m, -1, np.int64),
                "model_id": np.full(m, summary["model_id"], object),
                "policy": np.full(m, "", object),
            }

    with atomic_directory(out, overwrite=overwrite) as tmp:
        shard = write_shard(tmp / shard_name(0, 1), batches(), FEATURES, labeled.num_classes)
        meta = {k: summary[k] for k in ("method", "ssl", "model_id", "kept_fraction")}
        manifest = make_manifest(
            name=out.name,
            shape=labeled.shape,
            class_names=labeled.class_names,
            shards=[shard],
            features=FEATURES,
            metadata={
                "pseudo_label": {**meta, "config": config.to_dict()},
                "model_id": meta["model_id"],
            },
        )
        atomic_write_json(tmp / MANIFEST, manifest)
        write_summary(tmp, "pseudo-label", summary)
