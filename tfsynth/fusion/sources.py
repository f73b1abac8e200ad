"""The sources of D': real data, augmented data, generated data.

A source knows how many examples of each class it can give (`caps`) and,
once the plan has fixed how many it gives (`select(counts, rng)`), yields
any contiguous range of its own sequence with `batches(a, b)`: dicts of
NumPy arrays with "image" (uint8 NHWC), "label" (int64) and every
provenance column in `PROVENANCE`. A range depends only on the plan and
the seed, never on which worker asks for it, so shards can be built
independently and resumed.

Kinds:

- `ArraySource`: the real data (held in memory; it is the small dataset).
- `DirSource`: a dataset written earlier (`augment`, `generate`, ...);
  streamed, so a large one is never held whole.
- `AugmentSource`: a policy applied on the fly to the real data, per class
  (`tfsynth.augment.augment_batches`), so class targets hold exactly.
- `GeneratorSource`: a model.keras sampled on the fly in batches
  (`tfsynth.models.sampling.generate_batches`); class-conditional, or
  unconditional with a curator that pseudo-labels its images
  (`tfsynth.curation`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tfsynth.errors import ConfigError, DataError

# Every example of D' carries these columns (manifest feature specs).
PROVENANCE: dict[str, dict[str, Any]] = {
    "source": {"dtype": "string", "shape": []},
    "source_index": {"dtype": "int64", "shape": []},
    "gen_seed": {"dtype": "int64", "shape": []},
    "gen_index": {"dtype": "int64", "shape": []},
    "model_id": {"dtype": "string", "shape": []},
    "policy": {"dtype": "string", "shape": []},
    # The curating classifier's probability of the label (tfsynth.curation).
    "confidence": {"dtype": "float32", "shape": []},
}
# Values of the columns that do not apply to a source.
DEFAULTS = {"gen_seed": -1, "gen_index": -1, "model_id": "", "policy": "", "confidence": -1.0}
# String columns that D' has only when one of its sources carries them (so a
# D' without such a source keeps its layout), with the value of the others:
# `method`, how a pseudo-label was made (tfsynth.selfsup.pseudo).
OPTIONAL = {"method": ""}
_NUMPY_DTYPES = {"int64": np.int64, "float32": np.float32}
UNBOUNDED = 1 << 40  # caps of sources that make as many examples as asked


def _strings(value, n: int) -> np.ndarray:
    out = np.empty(n, object)
    out[:] = value
    return out


def tag(batch: dict[str, np.ndarray], source: str, **columns) -> dict[str, np.ndarray]:
    """Completes a batch with all provenance columns (defaults where not given)."""
    n = len(batch["label"])
    out = {"image": batch["image"], "label": np.asarray(batch["label"], np.int64)}
    out["source"] = _strings(source, n)
    for name, default in {"source_index": -1, **DEFAULTS}.items():
        value = columns.get(name, batch.get(name, default))
        if PROVENANCE[name]["dtype"] == "string":
            out[name] = value if isinstance(value, np.ndarray) else _strings(value, n)
        else:
            dtype = _NUMPY_DTYPES[PROVENANCE[name]["dtype"]]
            out[name] = np.broadcast_to(np.asarray(value, dtype), (n,))
    if "soft_label" in batch:
        out["soft_label"] = np.asarray(batch["soft_label"], np.float32)
    for name in OPTIONAL:
        if name in batch:
            out[name] = np.asarray(batch[name], object)
    return out


def _pick_per_class(labels: np.ndarray, counts: np.ndarray, rng, cycle: bool) -> np.ndarray:
    """`counts[c]` indices of class c (random, without repeats unless `cycle`), shuffled."""
    parts = []
    for c, k in enumerate(counts):
        if k == 0:
            continue
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < k and not cycle:
            raise ConfigError(f"class {c}: asked for {k} examples, the source has {len(idx)}")
        parts.append(np.resize(idx, k) if cycle else idx[:k])
    seq = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return rng.permutation(seq).astype(np.int64)


class Source:
    """Base class; see the module docstring."""

    name: str = ""
    flexible: bool = False  # True: makes as many examples of a class as asked
    soft_labels: bool = False
    columns: tuple[str, ...] | list[str] = ()  # its own columns passed through to D'

    def caps(self, num_classes: int) -> np.ndarray:
        raise NotImplementedError

    def select(self, counts: np.ndarray, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def batches(self, a: int, b: int, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    def rejected_per_class(self) -> list[int] | None:
        """Candidates rejected so far, per class (None: this source rejects nothing)."""
        return None


class ArraySource(Source):
    """Examples held in memory (the real data); each is used at most once."""

    def __init__(self, name: str, dataset):
        self.name = name
        self.spec = dataset.name
        self.images, self.labels = dataset.numpy()
        self.seq = np.zeros(0, np.int64)

    def caps(self, num_classes):
        return np.bincount(self.labels, minlength=num_classes)[:num_classes]

    def select(self, counts, rng):
        self.seq = _pick_per_class(self.labels, counts, rng, cycle=False)

    def batches(self, a, b, batch_size):
        for s in range(a, b, batch_size):
            idx = self.seq[s : min(b, s + batch_size)]
            yield tag(
                {"image": self.images[idx], "label": self.labels[idx]},
                self.name,
                source_index=idx,
            )

    def describe(self):
        return {"kind": "data", "spec": self.spec, "num_available": len(self.labels)}


class DirSource(Source):
    """A dataset written earlier (aug or gen), streamed shard by shard.

    Its own provenance columns (gen_seed, gen_index, model_id, policy,
    confidence, soft_label, and those in `OPTIONAL` such as a pseudo-label's
    method) are carried over; `source_index` is the row in that dataset.
    """

    def __init__(self, name: str, dataset, keep: np.ndarray | None = None):
        self.name = name
        self.dataset = dataset
        self.spec = dataset.name
        self.labels = _labels_of(dataset)
        self.keep = keep  # rows the memorization filter let through
        meta = dataset.metadata.get("manifest", {})
        self.columns = [
            c
            for c in meta.get("features", {})
            if c in DEFAULTS or c in OPTIONAL or c == "soft_label"
        ]
        self.soft_labels = "soft_label" in self.columns
        self.model_id = str(meta.get("metadata", {}).get("model_id", ""))
        self.seq = np.zeros(0, np.int64)

    def caps(self, num_classes):
        labels = self.labels if self.keep is None else self.labels[self.keep]
        return np.bincount(labels, minlength=num_classes)[:num_classes]

    def select(self, counts, rng):
        labels = self.labels if self.keep is None else np.where(self.keep, self.labels, -1)
        self.seq = _pick_per_class(labels, counts, rng, cycle=False)

    def batches(self, a, b, batch_size):
        want = self.seq[a:b]
        if len(want) == 0:
            return
        rows = self._read_rows(want)
        for s in range(0, len(want), batch_size):
            part = {k: v[s : s + batch_size] for k, v in rows.items()}
            if self.model_id and "model_id" not in part:
                part["model_id"] = _strings(self.model_id, len(part["label"]))
            yield tag(part, self.name, source_index=want[s : s + batch_size])

    def _read_rows(self, want: np.ndarray) -> dict[str, np.ndarray]:
        """The rows `want` (any order) in that order; one sequential pass over their span."""
        keys = ["image", "label", *self.columns]
        if not self.dataset.is_streamed:
            images, labels = self.dataset.numpy()
            cols = {"image": images, "label": labels, **self.dataset.extras}
            return {k: np.asarray(cols[k])[want] for k in keys}
        order = np.argsort(want, kind="stable")
        sorted_rows = want[order]
        out: dict[str, np.ndarray] = {}
        lo, hi = int(sorted_rows[0]), int(sorted_rows[-1]) + 1
        pos = lo
        for batch in self.dataset[lo:hi].iter_batches(1024):
            n = len(batch["label"])
            i0, i1 = np.searchsorted(sorted_rows, [pos, pos + n])
            if i1 > i0:
                for k in keys:
                    v = np.asarray(batch[k])
                    if k not in out:
                        dtype = object if v.dtype.kind in "SUO" else v.dtype
                        out[k] = np.empty((len(want), *v.shape[1:]), dtype)
                    out[k][order[i0:i1]] = v[sorted_rows[i0:i1] - pos]
            pos += n
        return out

    def describe(self):
        d = {"kind": "data", "spec": self.spec, "num_available": len(self.labels)}
        if self.keep is not None:
            d["num_filtered_out"] = int((~self.keep).sum())
        return d


def _labels_of(dataset) -> np.ndarray:
    """All labels of a dataset, reading only the label column of a stream."""
    if not dataset.is_streamed:
        return dataset.labels
    ds = dataset.element_dataset().map(lambda e: e["label"]).batch(8192)
    labels = np.concatenate(list(ds.as_numpy_iterator())).astype(np.int64)
    if labels.size and labels.max() >= dataset.num_classes:
        raise DataError(f"{dataset.name}: labels out of range for {dataset.num_classes} classes")
    return labels


class AugmentSource(Source):
    """An augmentation policy applied on the fly to the real data, class by class.

    Class c's examples come from `augment_batches` over the real examples
    of class c (so mixing policies mix within a class and the class count
    holds exactly), with a seed derived from (seed, c). Aug example j of D'
    is the r-th of its class, so any range maps to one contiguous index
    range per class.
    """

    flexible = True

    def __init__(self, real: ArraySource, policy: str, seed: int, class_names):
        from tfsynth.augment.materialize import shared_policy

        self.name = "aug"
        self.real = real
        self.class_names = list(class_names)
        # Shared: fusion builds a source per shard and the search per candidate.
        self.policy = shared_policy(policy, seed, len(self.class_names))
        self.soft_labels = bool(getattr(self.policy, "label_mixing", False))
        self.seed = seed
        self.seq = np.zeros(0, np.int64)

    def caps(self, num_classes):
        return np.where(self.real.caps(num_classes) > 0, UNBOUNDED, 0)

    def class_seed(self, c: int) -> int:
        return int(np.random.SeedSequence([self.seed, 7, c]).generate_state(1)[0])

    def select(self, counts, rng):
        self.seq = rng.permutation(np.repeat(np.arange(len(counts)), counts)).astype(np.int64)

    def batches(self, a, b, batch_size):
        from tfsynth.augment import augment_batches
        from tfsynth.data.dataset import ImageDataset

        labels = self.seq[a:b]
        if len(labels) == 0:
            return
        # rank[j]: how many of seq[:a + j] have the same class = the per-class index.
        before = np.bincount(self.seq[:a], minlength=len(self.class_names))
        parts: dict[int, dict[str, np.ndarray]] = {}
        for c in np.unique(labels):
            rows = np.flatnonzero(self.real.labels == c)
            subset = ImageDataset(
                self.real.images[rows],
                np.full(len(rows), c),
                class_names=self.class_names,
                name=f"real[class {c}]",
            )
            n = int((labels == c).sum())
            got = list(
                augment_batches(
                    subset, self.policy, n, seed=self.class_seed(int(c)), start=int(before[c])
                )
            )
            part = {k: np.concatenate([g[k] for g in got]) for k in got[0]}
            part["source_index"] = rows[part["source_index"]]
            parts[int(c)] = part
        out = _interleave(labels, parts)
        for s in range(0, len(labels), batch_size):
            yield tag({k: v[s : s + batch_size] for k, v in out.items()}, self.name)

    def describe(self):
        return {
            "kind": "policy",
            "policy": str(getattr(self.policy, "spec", self.policy)),
            "class_seeds": [self.class_seed(c) for c in range(len(self.class_names))],
        }


def _interleave(labels: np.ndarray, parts: dict[int, dict[str, np.ndarray]]):
    """Rows of per-class parts placed where `labels` has their class, in order."""
    first = next(iter(parts.values()))
    out = {}
    for k, v in first.items():
        dtype = object if v.dtype.kind in "SUO" else v.dtype
        out[k] = np.empty((len(labels), *v.shape[1:]), dtype)
    for c, part in parts.items():
        where = np.flatnonzero(labels == c)
        for k in out:
            out[k][where] = part[k]
    return out


class GeneratorSource(Source):
    """A generator sampled on the fly.

    Gen example j of D' is generator example j (`generate_batches` with the
    base seed): its noise depends only on (seed, j), and its label is the
    j-th of a seeded permutation of the per-class counts. With the
    memorization filter (`filter_fn`) or a curator (`tfsynth.curation`), a
    rejected example j is replaced by generator example j + t * n
    (t = 1, 2, ...) with the same label, which keeps the mapping
    independent of shards (`tfsynth.curation.replace_rejected`). An
    unconditional model needs a curator: its labels are the classifier's
    confident predictions (pseudo-labels). `sampling` is (steps, guidance)
    for a ddpm (None: the model's own).
    """

    flexible = True

    def __init__(
        self,
        path,
        seed: int,
        shape,
        class_names,
        filter_fn=None,
        curator=None,
        sampling=(None, None),
    ):
        from tfsynth.models import describe, load_generator, model_id, set_sampling

        self.name = "gen"
        self.path = describe(path)
        self.model = set_sampling(load_generator(path), *sampling, where=self.path)
        self.seed = seed
        self.filter_fn = filter_fn
        self.curator = curator
        self.class_names = list(class_names)
        k = len(class_names)
        if tuple(self.model.image_shape) != tuple(shape):
            raise DataError(
                f"{self.path}: the model makes {tuple(self.model.image_shape)} images but the real data "
                f"is {tuple(shape)}"
            )
        nc = self.model.num_classes
        if (nc and nc != k) or (not nc and k > 1 and curator is None):
            what = "unconditional" if not nc else f"{nc} classes"
            raise ConfigError(
                f"{self.path}: the model is {what} but the real data has {k} classes; fusion needs a "
                "class-conditional model (cgan, cvae) to meet class targets, --min-confidence to "
                "pseudo-label an unconditional model, or a generated dataset directory as --gen"
            )
        if curator is not None:
            curator.check_compatible(shape, class_names, where="the real data")
        self.model_id = model_id(self.model)
        self.seq = np.zeros(0, np.int64)
        self.resampler = self._resampler()

    def _resampler(self):
        from tfsynth.curation import Resampler

        return Resampler(
            self.model,
            self.class_names,
            seed=self.seed,
            stride=len(self.seq),
            curator=self.curator,
            keep_fn=self.filter_fn,
            where=self.path,
        )

    def caps(self, num_classes):
        return np.full(num_classes, UNBOUNDED, np.int64)

    def select(self, counts, rng):
        self.seq = rng.permutation(np.repeat(np.arange(len(counts)), counts)).astype(np.int64)
        self.resampler = self._resampler()  # its stride is the sequence length

    def batches(self, a, b, batch_size):
        for s in range(a, b, batch_size):
            e = min(b, s + batch_size)
            for batch in self.resampler.batches(s, self.seq[s:e], batch_size):
                yield tag(
                    batch,
                    self.name,
                    source_index=batch["gen_index"],
                    model_id=self.model_id,
                )

    def rejected_per_class(self):
        if not self.resampler.active:
            return None
        return self.resampler.rejected_per_class.tolist()

    def describe(self):
        d = {
            "kind": "model",
            "path": self.path,
            "model_id": self.model_id,
            "gen_seed": self.seed,
            "conditional": bool(self.model.num_classes),
        }
        if not self.model.num_classes and self.curator is not None:
            d["labels"] = "pseudo-labels of the curating classifier"
        if self.resampler.active:
            d.update(self.resampler.report())
        return d
