"""`generate_on_beam`: D_gen sampled on Apache Beam, byte-identical to `generate`.

The launcher checks the arguments and loads the model once (a
`ShardPlan`, as `generate` does) and opens the output's temporary
directory; each shard is one Beam element written by `GenerateShards`,
which loads the model (and the curating classifier) once per worker, and
saves the shard's manifest entry and curation counts next to it. The
launcher sums the counts and writes manifest.json and summary.json with
`generate`'s own step, then renames the directory into place. A failed
job leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.beam.options import BeamConfig
from tfsynth.beam.paths import local_output
from tfsynth.beam.shards import run_shards
from tfsynth.data.records import shard_name
from tfsynth.io import atomic_write_json

_ENTRY = ".entry-{:05d}.json"


def generate_on_beam(
    model_path: str | os.PathLike,
    n: int,
    *,
    out: str | os.PathLike,
    beam: BeamConfig | None = None,
    overwrite: bool = False,
    **kwargs,
) -> dict[str, Any]:
    """Samples `n` images like `tfsynth.generation.generate`, one Beam element per shard.

    Args:
        model_path, n, out, overwrite: as `generate`.
        beam: the runner and its options (default: the DirectRunner).
        **kwargs: `generate`'s other arguments (labels, seed, batch_size,
            examples_per_shard, curate, min_confidence, classifier as a
            path, steps, guidance), with its defaults.

    Returns:
        The manifest, the same bytes `generate` writes.
    """
    from tfsynth.generation import ShardPlan
    from tfsynth.io import atomic_directory

    beam = beam or BeamConfig()
    beam.pipeline_options()  # bad options fail before the model is loaded
    out = local_output(out)
    args = _generate_args(kwargs)
    plan = ShardPlan(model_path, n, **args)
    t0 = time.perf_counter()
    with atomic_directory(out, overwrite=overwrite) as tmp:
        writer = GenerateShards(model_path, n, args, tmp)
        run_shards(beam, range(plan.num_shards), writer)
        shards = _collect(plan, tmp)
        manifest = plan.finish(tmp, out, shards, t0)
    return manifest


def _generate_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`generate`'s keyword arguments with `GenerateConfig`'s defaults (defined there, once)."""
    from tfsynth.errors import ConfigError
    from tfsynth.generation import GenerateConfig, plan_args

    if {"num_examples", "overwrite"} & set(kwargs):  # given as `n` and `overwrite`
        raise ConfigError("generate: num_examples and overwrite are generate_on_beam's own")
    args = plan_args(GenerateConfig().replace(**kwargs))
    if args["classifier"] is not None and not isinstance(args["classifier"], (str, os.PathLike)):
        raise ConfigError("--runner beam: --classifier must be a path that every worker can load")
    return args


def _counts(plan) -> tuple[np.ndarray, np.ndarray]:
    r = plan.resampler
    if r is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return r.kept_per_class.copy(), r.rejected_per_class.copy()


def _collect(plan, tmp: Path) -> list[dict[str, Any]]:
    """The shards' manifest entries in order; their curation counts go into `plan`.

    Removes the entry files and any temporary file a killed attempt left.
    """
    shards = []
    for i in range(plan.num_shards):
        path = tmp / _ENTRY.format(i)
        saved = json.loads(path.read_text())
        path.unlink()
        shards.append(saved["entry"])
        if plan.resampler is not None:
            plan.resampler.kept_per_class += np.asarray(saved["kept"], np.int64)
            plan.resampler.rejected_per_class += np.asarray(saved["rejected"], np.int64)
    for stale in tmp.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)
    return shards


class GenerateShards:
    """Writes shards of one `generate` call on a worker (a writer for `run_shards`).

    Example:

    >>> import os, tempfile
    >>> from tfsynth.models import build_model
    >>> from tfsynth.beam.sample import _generate_args
    >>> root = tempfile.mkdtemp()
    >>> m = build_model("cgan", (16, 16, 1), num_classes=2, latent_dim=4, width=4)
    >>> m.compile()
    >>> m.save(os.path.join(root, "model.keras"))
    >>> w = GenerateShards(root, 5, _generate_args({"examples_per_shard": 3}), root)
    >>> w.setup()
    >>> w.write(1), w.shard_path(1).name
    (2, 'data-00001-of-00002.tfrecord')
    """

    def __init__(self, model_path, n: int, args: dict[str, Any], directory):
        self.model_path = os.fspath(model_path)
        self.n = n
        self.args = dict(args)
        self.directory = os.fspath(directory)
        self.plan = None

    def __getstate__(self):
        return {**self.__dict__, "plan": None}  # each worker loads its own model

    def setup(self) -> None:
        from tfsynth.generation import ShardPlan

        self.plan = ShardPlan(self.model_path, self.n, **self.args)

    def shard_path(self, i: int) -> Path:
        return Path(self.directory) / shard_name(i, self.plan.num_shards)

    def write(self, i: int) -> int:
        kept, rejected = _counts(self.plan)
        entry = self.plan.write(self.directory, i)
        kept2, rejected2 = _counts(self.plan)
        saved = {"entry": entry, "kept": kept2 - kept, "rejected": rejected2 - rejected}
        atomic_write_json(Path(self.directory) / _ENTRY.format(i), saved)
        return entry["num_examples"]


__all__ = ["GenerateShards", "generate_on_beam"]
