"""`generate`: sample a trained model into a tfsynth dataset directory (D_gen).

```
OUT/data-*.tfrecord   images, labels and the gen_seed / gen_index columns
                      (and confidence when curated)
OUT/manifest.json     shape, classes, counts, checksums; metadata.generator
OUT/summary.json      counts, timing, seed; kept fractions when curated
```

With ``curate=True`` the real-data classifier scores every sample and a
sample is kept only when it predicts the sample's label with probability
>= `min_confidence`; rejected samples are replaced from later noise
indices, so the class counts are exactly the requested ones
(`tfsynth.curation`, the same loop the fusion's generator source uses). An
unconditional model then gets the classifier's labels (pseudo-labels)
under the same threshold: "uniform" and "match" mean the wanted class
distribution.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.config import GenerateConfig
from tfsynth.errors import ConfigError

FEATURES = {
    "gen_seed": {"dtype": "int64", "shape": []},
    "gen_index": {"dtype": "int64", "shape": []},
}
CONFIDENCE = {"confidence": {"dtype": "float32", "shape": []}}


def generate(
    model, config: GenerateConfig | int | None = None, *, out: str | os.PathLike, **options
) -> dict[str, Any]:
    """Samples `config.num_examples` images of a trained model into a dataset directory.

    Each example carries `gen_seed` and `gen_index` columns (the generator
    example it is); the same seed gives byte-identical images. Without
    curation an unconditional model labels every image 0 (class_names are
    kept from training; the manifest metadata says so).

    Args:
        model: DIR (holding model.keras), a .keras file, a trainer, or
            `train`'s result.
        config: a `GenerateConfig` (every option and its default; see it
            for `labels`, `curate`, `min_confidence`, `classifier`, `steps`
            and `guidance`), or the number of images for
            `GenerateConfig(num_examples=n)`.
        out: the new dataset directory (written atomically).
        **options: `GenerateConfig` fields that replace the config's.
            With `curate`, only samples the classifier confirms are kept
            (see the module docstring) and a `confidence` column and the
            kept fractions go into summary.json; `classifier` defaults to
            classifier.keras in the model's run directory (needed when
            `model` is a bare trainer).

    Returns:
        The manifest; OUT/summary.json is written as well.

    Example:

    >>> import os, tempfile
    >>> from tfsynth.models import build_model
    >>> root = tempfile.mkdtemp()
    >>> m = build_model("cgan", (16, 16, 1), num_classes=2, latent_dim=4, width=4)
    >>> m.compile()
    >>> m.save(os.path.join(root, "model.keras"))
    >>> generate(root, 5, labels="1", out=os.path.join(root, "gen"))["class_counts"]
    [0, 5]
    """
    from tfsynth.io import atomic_directory

    cfg = config if isinstance(config, GenerateConfig) else GenerateConfig(num_examples=config)
    cfg = cfg.replace(**options)
    plan = ShardPlan(model, cfg.num_examples, **plan_args(cfg))
    t0 = time.perf_counter()
    with atomic_directory(out, overwrite=cfg.overwrite) as tmp:
        shards = [plan.write(tmp, i) for i in range(plan.num_shards)]
        manifest = plan.finish(tmp, out, shards, t0)
    return manifest


def plan_args(cfg: GenerateConfig) -> dict[str, Any]:
    """The `ShardPlan` arguments of `cfg` (all but `num_examples` and `overwrite`)."""
    names = [f.name for f in dataclasses.fields(cfg) if f.name not in ("num_examples", "overwrite")]
    return {name: getattr(cfg, name) for name in names}


class ShardPlan:
    """What every shard of one `generate` call needs; any shard is written alone.

    The labels, the noise and the curation of example j depend only on the
    arguments (not on which worker writes the shard holding j), so shards
    can be written by separate workers (`tfsynth.beam.generate`) and
    `finish` writes the manifest over all of them. The keyword arguments
    are `plan_args` of a `GenerateConfig` (all required).

    Example:

    >>> import os, tempfile
    >>> from tfsynth.models import build_model
    >>> root = tempfile.mkdtemp()
    >>> m = build_model("cgan", (16, 16, 1), num_classes=2, latent_dim=4, width=4)
    >>> m.compile()
    >>> m.save(os.path.join(root, "model.keras"))
    >>> plan = ShardPlan(root, 5, labels="1", seed=0, batch_size=4, examples_per_shard=3,
    ...     curate=False, min_confidence=0.9, classifier=None, steps=None, guidance=None)
    >>> plan.num_shards, plan.write(root, 1)["num_examples"]
    (2, 2)
    """

    def __init__(self, model, n, **kwargs):
        from tfsynth.models import describe, load_generator, set_sampling

        k = kwargs  # labels, seed, batch_size, examples_per_shard, curate, ... (see `generate`)
        _check_args(n, k)
        self.model, self.n, self.args = model, n, dict(kwargs)
        trainer = set_sampling(
            load_generator(model), k["steps"], k["guidance"], where=describe(model)
        )
        self.trainer = trainer
        self.resampler = _resampler(
            trainer, model, n, k["seed"], k["min_confidence"], k["classifier"], k["curate"]
        )
        self.names = self.resampler.class_names if self.resampler else _class_names(trainer)
        self.wanted = _wanted_labels(
            trainer, n, k["labels"], k["seed"], len(self.names), bool(self.resampler)
        )
        self.num_shards = max(1, -(-n // k["examples_per_shard"]))

    def write(self, directory, i: int) -> dict[str, Any]:
        """Writes shard i into `directory`; returns its manifest entry."""
        return _write_shard(self, directory, i)

    def finish(self, directory, out, shards, t0: float) -> dict[str, Any]:
        """Writes manifest.json and summary.json into `directory`; returns the manifest."""
        a = self.args
        return _finish(
            directory, out, self.trainer, self.model, a["seed"], a["labels"], self.names,
            shards, self.resampler, t0,
        )  # fmt: skip


def _class_names(trainer) -> list[str]:
    return trainer.class_names or [str(i) for i in range(max(trainer.num_classes, 1))]


def _check_args(n, kwargs) -> None:
    if n is None:
        raise ConfigError("num_examples: generate needs the number of images (-n)")
    GenerateConfig(num_examples=n, **kwargs).validate()


def _resampler(trainer, model, n, seed, min_confidence, classifier, curate):
    """The curating `Resampler` (None without curation)."""
    if not curate:
        return None
    from tfsynth.curation import Resampler, default_classifier_path, load_curator
    from tfsynth.models import describe

    source = classifier if classifier is not None else default_classifier_path(model)
    curator = load_curator(source, min_confidence)
    names = trainer.class_names or [
        str(i) for i in range(trainer.num_classes or curator.num_classes)
    ]
    curator.check_compatible(trainer.image_shape, names, where=describe(model))
    return Resampler(trainer, names, seed=seed, stride=n, curator=curator, where=describe(model))


class _Classes:
    """What `resolve_labels` reads of a model, for the classes a curator labels."""

    def __init__(self, num_classes: int, class_counts):
        self.num_classes = num_classes
        self.class_counts = class_counts


def _wanted_labels(trainer, n, labels, seed, num_classes, curated) -> np.ndarray | None:
    """The n labels to make (None: generate_batches' own, uncurated default).

    Curated, every example needs its label up front: a replacement keeps
    the label of the example it replaces. An unconditional model's labels
    then range over the classifier's classes.
    """
    from tfsynth.models.sampling import resolve_labels, uniform_labels

    if not curated:
        return resolve_labels(trainer, n, labels, seed)  # validates before anything is written
    model = trainer if trainer.num_classes else _Classes(num_classes, trainer.class_counts)
    explicit = resolve_labels(model, n, labels, seed)
    return explicit if explicit is not None else uniform_labels(np.arange(n), num_classes)


def _write_shard(plan: ShardPlan, directory, i: int) -> dict[str, Any]:
    from tfsynth.data.records import shard_name, write_shard
    from tfsynth.models.sampling import generate_batches

    per_shard, bs, seed = (
        plan.args["examples_per_shard"],
        plan.args["batch_size"],
        plan.args["seed"],
    )
    features = {**FEATURES, **(CONFIDENCE if plan.resampler else {})}
    a, b = i * per_shard, min(plan.n, (i + 1) * per_shard)
    wanted = plan.wanted
    if plan.resampler is not None:
        batches = plan.resampler.batches(a, wanted[a:b], bs)
    else:
        batches = generate_batches(
            plan.trainer,
            b - a,
            labels=None if wanted is None else wanted[a:b],
            seed=seed,
            start=a,
            batch_size=bs,
        )
    path = Path(directory) / shard_name(i, plan.num_shards)
    return write_shard(path, batches, features, len(plan.names))


def _finish(tmp, out, trainer, model, seed, labels, names, shards, resampler, t0):
    """Writes manifest.json and summary.json into `tmp`; returns the manifest."""
    from tfsynth.data.records import MANIFEST, make_manifest
    from tfsynth.io import atomic_write_json
    from tfsynth.models import describe, model_id
    from tfsynth.summary import write_summary

    mid = model_id(trainer)
    gen = {
        "model_path": describe(model),
        "model_id": mid,
        "seed": seed,
        "labels": labels if isinstance(labels, str) else "explicit",
        "conditional": bool(trainer.num_classes),
    }
    from tfsynth.privacy import guarantee

    if guarantee(trainer) is not None:  # a DP model: the budget it was released under
        gen["privacy"] = guarantee(trainer)
    if hasattr(trainer, "sample_steps"):  # a ddpm: how it sampled
        gen.update(sample_steps=trainer.sample_steps, guidance=trainer.guidance)
    if not trainer.num_classes:
        gen["note"] = (
            "unconditional model: the labels are the curating classifier's predictions"
            if resampler
            else "unconditional model: every label is 0"
        )
    report = resampler.report() if resampler else None
    if report:
        gen["curation"] = report
    features = {**FEATURES, **(CONFIDENCE if resampler else {})}
    manifest = make_manifest(
        name=Path(out).name,
        shape=trainer.image_shape,
        class_names=names,
        shards=shards,
        features=features,
        metadata={"generator": gen},
    )
    atomic_write_json(tmp / MANIFEST, manifest)
    wall = time.perf_counter() - t0
    n = manifest["num_examples"]
    summary = {
        "num_examples": n,
        "model_id": mid,
        "seed": seed,
        "labels": gen["labels"],
        "class_counts": manifest["class_counts"],
        "seconds": round(wall, 3),
        "images_per_second": round(n / wall, 1) if wall > 0 else 0.0,
        "out": str(out),
    }
    if report:  # flattened: kept_fraction_per_class.<class name>
        keys = ("classifier", "min_confidence", "num_candidates", "num_rejected", "kept_fraction")
        summary.update({k: report[k] for k in keys})
        summary["kept_fraction_per_class"] = report["kept_fraction_per_class"]
    write_summary(tmp, "generate", summary)
    return manifest


__all__ = ["GenerateConfig", "ShardPlan", "generate", "plan_args"]
