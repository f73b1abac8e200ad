"""`build_fused`: the streaming, sharded, resumable writer of D'.

How D' is laid out (everything below is a pure function of the config and
the seed, so any worker computes the same layout):

1. The plan (`tfsynth.fusion.plan`) fixes how many examples of each class
   every source gives.
2. Each source draws its examples (`Source.select`) with a generator
   seeded by (seed, source): which real rows, which rows of a dataset
   directory, which label each generated example gets.
3. A seeded permutation of the source ids over the N positions of D'
   interleaves the sources (the global shuffle). Within one source the
   order is its own seeded order, so the examples of source s inside any
   range of positions are one contiguous range of that source's sequence:
   a shard needs only its own part of every source and D' is never held
   in memory (the real data is; it is the small dataset).
4. Shard k holds positions [k*N//S, (k+1)*N//S). It is written under a
   temporary name and renamed, then its manifest entry is saved next to
   it; a rerun skips shards whose entry and checksum are present, so a
   killed build resumes at the first unfinished shard, and
   ``shard_index=i`` builds shard i alone (separate workers). The merge
   writes manifest.json and renames the staging directory
   (``.NAME.partial``) to NAME.

The same config and seed give byte-identical shards. `materialize` builds
the same D' in memory (the same layout, every shard in order), for callers
that train on it at once, such as the validation search of the mix.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfsynth.data.dataset import ImageDataset
from tfsynth.data.records import MANIFEST, make_manifest, shard_name, write_shard
from tfsynth.errors import ConfigError, DataError
from tfsynth.fusion.plan import (
    POOL,
    SOURCES,
    class_totals,
    pool_targets,
    solve_counts,
    source_totals,
)
from tfsynth.fusion.sources import (
    OPTIONAL,
    PROVENANCE,
    ArraySource,
    AugmentSource,
    DirSource,
    GeneratorSource,
)
from tfsynth.io import atomic_write_json

if TYPE_CHECKING:
    import keras

FORMATS = ("tfsynth", "tfds")
PLAN_FILE = "fuse-plan.json"


@dataclass
class FusionConfig:
    """What goes into D' (see `build_fused`).

    Args:
        real: dataset spec of the real data (its classes and shape define D'),
            or an `ImageDataset`.
        aug: an augmented dataset (e.g. `tfsynth augment`): spec or `ImageDataset`.
        aug_policy: or an augmentation policy applied on the fly to `real`.
        gen: a generated dataset (spec or `ImageDataset`), or a model to
            sample on the fly: PATH.keras, a run directory with model.keras,
            a trainer or `train`'s result.
        pseudo: a `tfsynth pseudo-label` dataset (directory or
            `ImageDataset`); its provenance (confidence, model_id) is carried over.
        ratios: ``real=0.5,aug=0.25,gen=0.25`` (weights). Default: real 0.5
            and the rest shared equally by the synthetic sources given.
        counts: ``real=5000,gen=5000``: exact counts instead of ratios.
        size: size of D' with ratios; default: use all real examples once.
        class_target: ``match`` (the real class distribution), ``uniform``,
            ``pool`` (each source's classes as it holds them: for --pseudo)
            or ``CLASS=WEIGHT,...``.
        seed: base seed of every random choice.
        num_shards: number of output shards (default from examples_per_shard).
        examples_per_shard: shard size when num_shards is not given.
        memorization_threshold: drop generated samples whose nearest real
            image is closer than this (Euclidean, pixels scaled to [0, 1]).
        min_confidence: curate a --gen model's samples: keep a sample only
            when the real-data classifier predicts its label with at least
            this probability (0 < t < 1); an unconditional model's labels
            are the classifier's predictions (see `tfsynth.curation`).
        classifier: that classifier: a ``.keras`` path or a `keras.Model`
            (default: classifier.keras in the --gen model's run directory).
        gen_steps, gen_guidance: a --gen ddpm's DDIM steps and guidance
            (default: those saved with the model).
        batch_size: generation and write batch size.
        format: ``tfsynth`` (dataset directory) or ``tfds``.

    `get_config()` describes objects (an `ImageDataset`, a `keras.Model`) by
    their name and a hash of their content, so `fingerprint()` still tells
    configs apart; such a config does not round-trip through `from_config`.

    Example:

    >>> cfg = FusionConfig(real="mnist-10k[:40]", gen="run/model.keras").validate()
    >>> cfg.mix()
    ('real=0.5,gen=0.5', None)
    >>> import numpy as np
    >>> from tfsynth.data import ImageDataset
    >>> tiny = ImageDataset(np.zeros((4, 16, 16, 1), np.uint8), [0, 1, 0, 1], name="tiny")
    >>> FusionConfig(real=tiny).get_config()["real"][:40]
    "ImageDataset 'tiny' (4 examples, sha256 "
    """

    real: str | ImageDataset = "mnist-10k"
    aug: str | ImageDataset | None = None
    aug_policy: str | None = None
    gen: str | ImageDataset | keras.Model | None = None
    ratios: str | dict | None = None
    counts: str | dict | None = None
    size: int | None = None
    class_target: str | list | dict = "match"
    seed: int = 0
    num_shards: int | None = None
    examples_per_shard: int = 10_000
    memorization_threshold: float | None = None
    min_confidence: float | None = None
    classifier: str | keras.Model | None = None
    gen_steps: int | None = None
    gen_guidance: float | None = None
    batch_size: int = 256
    format: str = "tfsynth"
    extra: dict = field(default_factory=dict)  # free-form, recorded in the manifest
    pseudo: str | ImageDataset | None = None

    def get_config(self) -> dict[str, Any]:
        config = {f.name: _config_value(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if config["pseudo"] is None:  # configs from before --pseudo keep their fingerprint
            del config["pseudo"]
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FusionConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"fusion config: unknown field(s) {', '.join(unknown)}")
        return cls(**config)

    def validate(self) -> FusionConfig:
        """Cheap checks that need no data; raises ConfigError naming the field."""
        if self.aug is not None and self.aug_policy:
            raise ConfigError("--aug and --aug-policy: give at most one")
        if self.format not in FORMATS:
            raise ConfigError(
                f"--format: expected one of {', '.join(FORMATS)}, got {self.format!r}"
            )
        for name in ("seed", "examples_per_shard", "batch_size", "num_shards", "size"):
            v = getattr(self, name)
            low = 0 if name == "seed" else 1
            if v is None and name in ("num_shards", "size"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag}: expected an integer >= {low}, got {v!r}")
        t = self.memorization_threshold
        if t is not None and (not isinstance(t, (int, float)) or not t > 0):
            raise ConfigError(f"--memorization-threshold: expected a number > 0, got {t!r}")
        if t is not None and self.gen is None:
            raise ConfigError("--memorization-threshold needs a --gen source")
        self._validate_objects()
        self._validate_curation()
        self._validate_sampling()
        return self

    def _validate_sampling(self) -> None:
        from tfsynth.models.diffusion import check_sampling

        if self.gen_steps is None and self.gen_guidance is None:
            return
        check_sampling(self.gen_steps, self.gen_guidance)
        if self.gen is None or not _is_model(self.gen):
            raise ConfigError("--steps and --guidance need a --gen ddpm (its model.keras)")

    def _validate_objects(self) -> None:
        if not isinstance(self.real, (str, os.PathLike, ImageDataset)):
            raise ConfigError(
                f"--real: expected a dataset spec or an ImageDataset, got {type(self.real).__name__}"
            )
        c = self.classifier
        if c is not None and not isinstance(c, (str, os.PathLike)) and not _is_keras_model(c):
            raise ConfigError(
                f"--classifier: expected the path of a classifier .keras or a keras.Model, "
                f"got {type(c).__name__}"
            )

    def _validate_curation(self) -> None:
        from tfsynth.curation import check_min_confidence

        if self.min_confidence is None:
            if self.classifier is not None:
                raise ConfigError("--classifier is used with --min-confidence; give both")
            return
        check_min_confidence(self.min_confidence)
        if self.gen is None or not _is_model(self.gen):
            raise ConfigError(
                "--min-confidence needs a --gen model (a .keras file or its run directory); "
                "curate a generated dataset with `tfsynth generate --curate`"
            )

    def mix(self) -> tuple[str | dict | None, str | dict | None]:
        """(ratios, counts), with the default ratios filled in."""
        if self.ratios is not None or self.counts is not None:
            return self.ratios, self.counts
        synth = [
            s
            for s, given in (
                ("aug", self.aug is not None or self.aug_policy),
                ("gen", self.gen is not None),
                ("pseudo", self.pseudo is not None),
            )
            if given
        ]
        if not synth:
            return "real=1", None
        return ",".join(["real=0.5", *(f"{s}={0.5 / len(synth)}" for s in synth)]), None

    def fingerprint(self) -> str:
        """Hash of everything that decides the shards' bytes (not the output format)."""
        import tfsynth

        d = {k: v for k, v in self.get_config().items() if k not in ("format", "extra")}
        d["tfsynth"] = tfsynth.__version__
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _is_keras_model(obj) -> bool:
    import keras

    return isinstance(obj, keras.Model)


def _config_value(value):
    """A JSON-ready config value; objects become a name plus a hash of their content."""
    if isinstance(value, ImageDataset):
        images, labels = value.numpy()
        digest = hashlib.sha256(json.dumps([value.class_names, list(images.shape)]).encode())
        digest.update(np.ascontiguousarray(images).tobytes())
        digest.update(np.asarray(labels, np.int64).tobytes())
        return (
            f"ImageDataset {value.name!r} ({len(value)} examples, sha256 {digest.hexdigest()[:16]})"
        )
    if _is_keras_model(value):
        digest = hashlib.sha256()
        for w in value.weights:
            digest.update(np.asarray(w.numpy()).tobytes())
        return f"keras.Model {value.name!r} (weights sha256 {digest.hexdigest()[:16]})"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return copy.deepcopy(value)


def _rng(seed: int, *tag: int) -> np.random.Generator:
    return np.random.default_rng([seed, *tag])


def _is_model(spec) -> bool:
    """Whether a --gen source is a model to sample (not a dataset)."""
    if _is_keras_model(spec):
        return True
    if isinstance(spec, ImageDataset):
        return False
    p = Path(spec)
    return p.suffix == ".keras" or (p.is_dir() and (p / "model.keras").is_file())


def _memorization_filter(real_images: np.ndarray, threshold: float):
    """keep(images) -> bool mask: nearest real image at least `threshold` away."""
    from tfsynth.evaluation.neighbors import nearest_neighbor

    reference = real_images.reshape(len(real_images), -1).astype(np.float32) / 255.0

    def keep(images: np.ndarray) -> np.ndarray:
        query = images.reshape(len(images), -1).astype(np.float32) / 255.0
        return nearest_neighbor(query, reference)[0] >= threshold

    return keep


class Layout:
    """The global layout of D' for a config (see the module docstring)."""

    def __init__(self, cfg: FusionConfig):
        from tfsynth.data.sources import load_dataset

        self.cfg = cfg
        spec = cfg.real
        real_ds = spec if isinstance(spec, ImageDataset) else load_dataset(os.fspath(spec))
        real_ds.require_labels("fuse --real")
        self.class_names = real_ds.class_names
        self.shape = tuple(real_ds.shape)
        k = len(self.class_names)
        real = ArraySource("real", real_ds)
        ratios, counts = cfg.mix()
        candidates = self._candidates(real)
        sizes = {
            n: len(s.labels)
            for n, s in candidates.items()
            if isinstance(s, (ArraySource, DirSource))
        }
        totals = source_totals(ratios, counts, cfg.size, sizes)
        for name in totals:
            if name not in candidates:
                flag = {"aug": "--aug or --aug-policy", "gen": "--gen", "pseudo": "--pseudo"}[name]
                raise ConfigError(
                    f"--ratios/--counts give {name!r} a share but no {flag} was given"
                )
        self.names = list(totals)
        self.sources = [candidates[n] for n in self.names]
        self.size = int(sum(totals.values()))
        caps = np.stack([s.caps(k) for s in self.sources])
        flexible = [s.flexible for s in self.sources]
        if cfg.class_target == POOL:
            self.targets = pool_targets(list(totals.values()), caps, flexible, real.caps(k))
        else:
            self.targets = class_totals(cfg.class_target, self.size, self.class_names, real.caps(k))
        self.counts = solve_counts(
            list(totals.values()),
            self.targets,
            caps,
            flexible,
            source_names=self.names,
            class_names=self.class_names,
        )
        for i, (name, src) in enumerate(zip(self.names, self.sources)):
            src.select(self.counts[i], _rng(cfg.seed, 100 + SOURCES.index(name)))
        ids = np.repeat(np.arange(len(self.names), dtype=np.uint8), self.counts.sum(1))
        self.interleave = _rng(cfg.seed, 1).permutation(ids)
        self.num_shards = cfg.num_shards or max(1, -(-self.size // cfg.examples_per_shard))
        if self.num_shards > self.size:
            raise ConfigError(
                f"--num-shards: {self.num_shards} shards for only {self.size} examples"
            )
        n, s = self.size, self.num_shards
        self.bounds = [(i * n) // s for i in range(s + 1)]
        # offsets[i, j]: examples of source j before shard i.
        per_shard = np.stack(
            [
                np.bincount(self.interleave[a:b], minlength=len(self.names))
                for a, b in zip(self.bounds[:-1], self.bounds[1:])
            ]
        )
        self.offsets = np.vstack([np.zeros(len(self.names), np.int64), np.cumsum(per_shard, 0)])
        self.features = dict(PROVENANCE)
        if any(src.soft_labels for src in self.sources):
            self.features["soft_label"] = {"dtype": "float32", "shape": [k]}
        for name in OPTIONAL:
            if any(name in src.columns for src in self.sources):
                self.features[name] = {"dtype": "string", "shape": []}

    def _candidates(self, real: ArraySource) -> dict[str, Any]:
        """The sources the config names, before the plan picks among them."""
        cfg = self.cfg
        filt = None
        if cfg.memorization_threshold is not None:
            filt = _memorization_filter(real.images, float(cfg.memorization_threshold))
        candidates: dict[str, Any] = {"real": real}
        if cfg.aug is not None:
            candidates["aug"] = DirSource("aug", self._open(cfg.aug, "--aug"))
        elif cfg.aug_policy:
            candidates["aug"] = AugmentSource(real, cfg.aug_policy, cfg.seed, self.class_names)
        if cfg.gen is not None and _is_model(cfg.gen):
            candidates["gen"] = GeneratorSource(
                cfg.gen,
                cfg.seed,
                self.shape,
                self.class_names,
                filt,
                self._curator(),
                sampling=(cfg.gen_steps, cfg.gen_guidance),
            )
        elif cfg.gen is not None:
            ds = self._open(cfg.gen, "--gen")
            keep = None
            if filt is not None:
                keep = np.concatenate([filt(b["image"]) for b in ds.iter_batches(1024)])
            candidates["gen"] = DirSource("gen", ds, keep=keep)
        if cfg.pseudo is not None:
            candidates["pseudo"] = DirSource("pseudo", self._open(cfg.pseudo, "--pseudo"))
        return candidates

    def _curator(self):
        """The curator of the --gen model's samples (None without --min-confidence)."""
        from tfsynth.curation import default_classifier_path, load_curator

        cfg = self.cfg
        if cfg.min_confidence is None:
            return None
        clf = cfg.classifier if cfg.classifier is not None else default_classifier_path(cfg.gen)
        return load_curator(clf, cfg.min_confidence)

    def _open(self, spec, flag: str):
        from tfsynth.data.sources import load_dataset

        ds = spec if isinstance(spec, ImageDataset) else load_dataset(os.fspath(spec))
        spec = ds.name if isinstance(spec, ImageDataset) else spec
        if tuple(ds.shape) != self.shape:
            raise DataError(f"{spec}: {flag} images are {ds.shape}, the real data is {self.shape}")
        if ds.class_names != self.class_names:
            raise DataError(
                f"{spec}: {flag} class names {ds.class_names} differ from the real data's "
                f"{self.class_names}"
            )
        return ds

    def shard_batches(self, k: int) -> Iterator[dict[str, np.ndarray]]:
        """The examples of shard k, in order, in batches of `batch_size`."""
        bs = self.cfg.batch_size
        takers = [
            _Take(src.batches(int(self.offsets[k, j]), int(self.offsets[k + 1, j]), bs))
            for j, src in enumerate(self.sources)
        ]
        num_classes = len(self.class_names)
        for q in range(self.bounds[k], self.bounds[k + 1], bs):
            ids = self.interleave[q : min(self.bounds[k + 1], q + bs)]
            parts = []
            for j, taker in enumerate(takers):
                where = np.flatnonzero(ids == j)
                if len(where):
                    parts.append((where, taker.take(len(where))))
            out = {}
            for key, spec in [("image", None), ("label", None), *self.features.items()]:
                if key == "soft_label":
                    cols = [
                        p.get("soft_label", np.eye(num_classes, dtype=np.float32)[p["label"]])
                        for _, p in parts
                    ]
                elif key in OPTIONAL:
                    cols = [
                        p.get(key, np.full(len(p["label"]), OPTIONAL[key], object))
                        for _, p in parts
                    ]
                else:
                    cols = [p[key] for _, p in parts]
                dtype = object if spec is not None and spec["dtype"] == "string" else cols[0].dtype
                arr = np.empty((len(ids), *cols[0].shape[1:]), dtype)
                for (where, _), col in zip(parts, cols):
                    arr[where] = col
                out[key] = arr
            yield out

    def rejected_per_class(self) -> dict[str, list[int]]:
        """Per source that can reject candidates: how many it rejected so far, per class."""
        rows = {n: s.rejected_per_class() for n, s in zip(self.names, self.sources)}
        return {n: r for n, r in rows.items() if r is not None}

    def metadata(self) -> dict[str, Any]:
        from tfsynth.summary import versions

        return {
            "fusion": {
                "config": self.cfg.get_config(),
                "fingerprint": self.cfg.fingerprint(),
                "seed": self.cfg.seed,
                "sources": {n: s.describe() for n, s in zip(self.names, self.sources)},
                "source_totals": dict(zip(self.names, self.counts.sum(1).tolist())),
                "class_targets": self.targets.tolist(),
                "counts": dict(zip(self.names, self.counts.tolist())),
                "num_shards": self.num_shards,
                "versions": versions(),
            }
        }


class _Take:
    """Takes exactly n rows at a time from an iterator of batch dicts."""

    def __init__(self, batches: Iterator[dict[str, np.ndarray]]):
        self.batches = batches
        self.pending: list[dict[str, np.ndarray]] = []
        self.count = 0

    def take(self, n: int) -> dict[str, np.ndarray]:
        while self.count < n:
            batch = next(self.batches)
            self.pending.append(batch)
            self.count += len(batch["label"])
        merged = (
            self.pending[0]
            if len(self.pending) == 1
            else {k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]}
        )
        head = {k: v[:n] for k, v in merged.items()}
        rest = {k: v[n:] for k, v in merged.items()}
        self.count -= n
        self.pending = [rest] if self.count else []
        return head


def _prefetch(it: Iterator, depth: int = 3) -> Iterator:
    """Runs `it` in a background thread, `depth` items ahead.

    The generator's TensorFlow calls release the GIL, so generating the
    next batch overlaps with serializing and writing this one.
    """
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(("ok", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("ok", done))
        except BaseException as e:  # handed to the consumer, re-raised there
            q.put(("error", e))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "error":
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()


def _staging_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry_path(staging: Path, k: int, num_shards: int) -> Path:
    return staging / f"{shard_name(k, num_shards)}.json"


def _finished(staging: Path, k: int, num_shards: int) -> dict | None:
    """The saved manifest entry of shard k when the shard is complete and intact."""
    ep = _entry_path(staging, k, num_shards)
    if not ep.is_file():
        return None
    try:
        entry = json.loads(ep.read_text())
    except json.JSONDecodeError:
        return None
    shard = staging / shard_name(k, num_shards)
    if not shard.is_file() or _sha256(shard) != entry.get("sha256"):
        return None
    return entry


def _write_one_shard(layout: Layout, staging: Path, k: int) -> dict:
    names = layout.names
    num_classes = len(layout.class_names)
    per_source = np.zeros((len(names), num_classes), np.int64)
    index = {n: j for j, n in enumerate(names)}

    def counted():
        for batch in _prefetch(layout.shard_batches(k)):
            src = np.array([index[s] for s in batch["source"]], np.int64)
            np.add.at(per_source, (src, batch["label"]), 1)
            yield batch

    path = staging / shard_name(k, layout.num_shards)
    for stale in staging.glob(f".{path.name}.tmp-*"):  # left by a killed run
        stale.unlink(missing_ok=True)
    before = layout.rejected_per_class()
    entry = write_shard(path, counted(), layout.features, num_classes)
    entry["source_class_counts"] = dict(zip(names, per_source.tolist()))
    after = layout.rejected_per_class()
    if after:  # candidates the memorization filter or the curator rejected in this shard
        entry["rejected_per_class"] = {
            n: (np.asarray(after[n]) - np.asarray(before[n])).tolist() for n in after
        }
    atomic_write_json(_entry_path(staging, k, layout.num_shards), entry)
    return entry


def _prepare_staging(out: Path, cfg: FusionConfig, overwrite: bool) -> Path:
    staging = _staging_dir(out)
    plan_path = staging / PLAN_FILE
    if plan_path.is_file():
        try:
            old = json.loads(plan_path.read_text()).get("fingerprint")
        except json.JSONDecodeError:
            old = None
        if old != cfg.fingerprint():
            if not overwrite:
                raise ConfigError(
                    f"{staging}: holds an unfinished build with a different config or seed; "
                    "rerun with the same options to resume, or pass --overwrite to start over"
                )
            shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def build_fused(
    config: FusionConfig | Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike,
    shard_index: int | None = None,
    merge_only: bool = False,
    overwrite: bool = False,
    **kwargs,
) -> dict[str, Any]:
    """Builds D' from real, augmented and generated data into `out`.

    Args:
        config: a `FusionConfig` (or its dict); or pass its fields as
            keyword arguments.
        out: the output directory; it appears only when complete.
        shard_index: build only this shard (into ``.NAME.partial`` next to
            `out`) and return; run the merge when all shards are done.
        merge_only: only merge finished shards (written by workers).
        overwrite: replace an existing `out` (and an unfinished build with a
            different config).

    Returns:
        The manifest (for ``shard_index``: ``{"shard": entry, "num_shards",
        "finished"}``).

    Raises:
        ConfigError / DataError: one line; nothing is left half-written
        where the result is expected.

    Example:

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "dprime")
    >>> m = build_fused(real="mnist-10k[:40]", counts="real=30", out=out, examples_per_shard=16)
    >>> m["num_examples"], len(m["shards"]), m["metadata"]["fusion"]["source_totals"]
    (30, 2, {'real': 30})
    """
    t0 = time.perf_counter()
    cfg = _as_config(config, kwargs)
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; choose another --out or remove it")
    if merge_only and shard_index is not None:
        raise ConfigError("--merge and --shard-index: give at most one")
    staging = _staging_dir(out)
    if merge_only:
        plan = _read_plan(staging, cfg)
        return _merge(out, staging, plan, cfg, overwrite, t0)
    layout = Layout(cfg)
    if shard_index is not None and not 0 <= shard_index < layout.num_shards:
        raise ConfigError(
            f"--shard-index: expected 0 <= index < {layout.num_shards} (--num-shards), got {shard_index}"
        )
    staging, plan = _start_build(layout, out, overwrite)
    todo = range(layout.num_shards) if shard_index is None else [shard_index]
    entry = None
    for k in todo:
        entry = _finished(staging, k, layout.num_shards) or _write_one_shard(layout, staging, k)
    if shard_index is not None:
        done = sum(
            _entry_path(staging, i, layout.num_shards).is_file() for i in range(layout.num_shards)
        )
        return {"shard": entry, "num_shards": layout.num_shards, "finished": done}
    return _merge(out, staging, plan, cfg, overwrite, t0)


def _start_build(layout: Layout, out: Path, overwrite: bool) -> tuple[Path, dict]:
    """The staging directory, holding the plan that every shard's worker agrees on."""
    cfg = layout.cfg
    staging = _prepare_staging(out, cfg, overwrite)
    plan = {
        "fingerprint": cfg.fingerprint(),
        "name": out.name,
        "shape": list(layout.shape),
        "class_names": layout.class_names,
        "features": layout.features,
        "num_shards": layout.num_shards,
        "metadata": layout.metadata(),
    }
    if not (staging / PLAN_FILE).is_file():
        atomic_write_json(staging / PLAN_FILE, plan)
    return staging, plan


def _as_config(config, kwargs: Mapping[str, Any]) -> FusionConfig:
    """A validated FusionConfig from a config, its dict, or its fields as keywords."""
    if config is None:
        config = FusionConfig.from_config(kwargs)
    elif isinstance(config, Mapping):
        config = FusionConfig.from_config({**config, **kwargs})
    elif kwargs:
        config = dataclasses.replace(config, **kwargs)
    return config.validate()


def materialize(config: FusionConfig | Mapping[str, Any] | None = None, **kwargs) -> ImageDataset:
    """Builds D' in memory: the rows `build_fused` writes for the same config, in order.

    The same `Layout` makes every shard in turn, so images and labels are
    byte-identical, row for row, to `load_dataset(out)` after `build_fused`.
    The provenance columns (source, source_index, gen_seed, gen_index,
    model_id, policy, confidence, and soft_label or method when a source
    has it) are the dataset's extras; string columns are str arrays. The
    metadata holds the fusion description that the manifest would hold.

    Args:
        config: a `FusionConfig` (or its dict); or pass its fields as
            keyword arguments (num_shards and format do not change the rows).

    Example:

    >>> ds = materialize(real="mnist-10k[:40]", counts="real=30", seed=1)
    >>> len(ds), sorted(set(ds.extras["source"].tolist())), ds.metadata["fusion"]["seed"]
    (30, ['real'], 1)
    """
    cfg = _as_config(config, kwargs)
    layout = Layout(cfg)
    batches = [b for k in range(layout.num_shards) for b in layout.shard_batches(k)]
    cols = {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}
    extras = {
        key: (v.astype(str) if v.dtype == object else v)
        for key, v in cols.items()
        if key not in ("image", "label")
    }
    metadata = layout.metadata()  # after the build: it counts the rejected candidates
    return ImageDataset(
        cols["image"],
        cols["label"],
        class_names=layout.class_names,
        name=f"fused-{cfg.fingerprint()}",
        extras=extras,
        metadata=metadata,
    )


def _curation_totals(entries, counts: Mapping[str, list], class_names) -> dict[str, dict]:
    """Per source that rejected candidates: the kept fractions over all shards."""
    from tfsynth.curation import kept_fractions

    rejected: dict[str, np.ndarray] = {}
    for e in entries:
        for name, row in e.get("rejected_per_class", {}).items():
            rejected[name] = rejected.get(name, 0) + np.asarray(row, np.int64)
    return {n: kept_fractions(counts[n], r, class_names) for n, r in rejected.items()}


def _read_plan(staging: Path, cfg: FusionConfig) -> dict:
    try:
        plan = json.loads((staging / PLAN_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raise DataError(f"{staging}: no unfinished build to merge (build shards first)") from None
    if plan.get("fingerprint") != cfg.fingerprint():
        raise ConfigError(f"{staging}: the shards were built with a different config or seed")
    return plan


def _merge(out: Path, staging: Path, plan: dict, cfg: FusionConfig, overwrite: bool, t0: float):
    from tfsynth.io import atomic_directory
    from tfsynth.summary import write_summary

    n = plan["num_shards"]
    entries = [_finished(staging, k, n) for k in range(n)]
    missing = [str(k) for k, e in enumerate(entries) if e is None]
    if missing:
        raise DataError(
            f"{staging}: shard(s) {', '.join(missing)} of {n} are not built yet; "
            "run them with --shard-index, then merge"
        )
    manifest = make_manifest(
        name=plan["name"],
        shape=plan["shape"],
        class_names=plan["class_names"],
        shards=entries,
        features=plan["features"],
        metadata=plan["metadata"],
    )
    fusion = manifest["metadata"]["fusion"]
    got = {
        s: np.sum([e["source_class_counts"][s] for e in entries], 0).tolist()
        for s in fusion["counts"]
    }
    if got != fusion["counts"]:  # a bug, not bad input: the plan must hold exactly
        raise AssertionError(f"written counts {got} differ from the plan {fusion['counts']}")
    curation = _curation_totals(entries, got, plan["class_names"])
    for name, totals in curation.items():
        fusion["sources"][name].update(totals)
    summary = {
        "out": str(out),
        "format": cfg.format,
        "num_examples": manifest["num_examples"],
        "num_shards": n,
        "seed": cfg.seed,
        "source_totals": fusion["source_totals"],
        "class_counts": dict(zip(plan["class_names"], manifest["class_counts"])),
        "seconds": round(time.perf_counter() - t0, 3),
        "config": {k: v for k, v in cfg.get_config().items() if not isinstance(v, (dict, list))},
    }
    for name, totals in curation.items():  # e.g. gen.kept_fraction, gen.kept_fraction_per_class.a
        summary[name] = {k: v for k, v in totals.items() if k != "rejected_per_class"}
    if cfg.format == "tfsynth":
        for k in range(n):
            _entry_path(staging, k, n).unlink()
        (staging / PLAN_FILE).unlink()
        atomic_write_json(staging / MANIFEST, manifest)
        write_summary(staging, "fuse", summary)
        if out.exists():  # overwrite=True was checked by the caller
            # Move the old result aside first: a crash between the renames
            # still leaves one complete directory.
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
        return manifest
    from tfsynth.fusion.tfds_format import write_tfds

    atomic_write_json(staging / MANIFEST, manifest)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        info_dir = write_tfds(staging, tmp, out.name)
        fused = {k: v for k, v in manifest.items() if k != "shards"}
        fused["tfds_dir"] = str(info_dir.relative_to(tmp))
        atomic_write_json(tmp / "fusion.json", fused)
        write_summary(tmp, "fuse", {**summary, "tfds_dir": fused["tfds_dir"]})
    shutil.rmtree(staging, ignore_errors=True)
    return manifest


__all__ = ["FORMATS", "FusionConfig", "Layout", "build_fused", "materialize"]
