"""`fuse_on_beam`: D' built on Apache Beam, byte-identical to `build_fused`.

The launcher makes the plan and the staging directory exactly as
`build_fused` does (``.NAME.partial`` next to `out`, resumable); each
shard is one Beam element written by `FuseShards`, which builds the
`Layout` (real data, policy, generator) once per worker and writes shard
k with the local builder's own shard step; the launcher then merges with
the local builder's merge (manifest.json, summary.json, the rename). A
failed job leaves only the staging directory: rerun it and the finished
shards are kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tfsynth.beam.options import BeamConfig
from tfsynth.beam.paths import local_output
from tfsynth.beam.shards import run_shards
from tfsynth.data.records import shard_name
from tfsynth.errors import ConfigError, DataError
from tfsynth.fusion import builder
from tfsynth.fusion.builder import FusionConfig


def fuse_on_beam(
    config: FusionConfig | Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike,
    beam: BeamConfig | None = None,
    overwrite: bool = False,
    **kwargs,
) -> dict[str, Any]:
    """Builds D' into `out` with one Beam element per shard; returns the manifest.

    Args:
        config: a `FusionConfig` (or its dict); or its fields as keywords.
            Its sources must be specs or paths (workers load them).
        out: the output directory; it appears only when complete.
        beam: the runner and its options (default: the DirectRunner).
        overwrite: replace an existing `out`.

    Example:

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "dprime")
    >>> m = fuse_on_beam(real="mnist-10k[:40]", counts="real=30", out=out, num_shards=2)
    >>> m["num_examples"], len(m["shards"])
    (30, 2)
    """
    t0 = time.perf_counter()
    cfg = builder._as_config(config, kwargs)
    beam = beam or BeamConfig()
    beam.pipeline_options()  # bad options fail before anything is loaded or written
    out = local_output(out)
    _check_portable(cfg)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; choose another --out or remove it")
    layout = builder.Layout(cfg)
    staging, plan = builder._start_build(layout, out, overwrite)
    n = layout.num_shards
    todo = [k for k in range(n) if builder._finished(staging, k, n) is None]
    run_shards(beam, todo, FuseShards(cfg, staging, n))
    return builder._merge(out, staging, plan, cfg, overwrite, t0)


def _check_portable(cfg: FusionConfig) -> None:
    """Workers rebuild the sources from the config: objects cannot travel."""
    for name in ("real", "classifier"):
        value = getattr(cfg, name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ConfigError(
                f"--runner beam: --{name} must be a spec or a path that every worker can "
                f"load, got a {type(value).__name__}"
            )


class FuseShards:
    """Writes shards of D' on a worker (a writer for `tfsynth.beam.shards.run_shards`).

    Example:

    >>> import tempfile, pathlib
    >>> from tfsynth.fusion import FusionConfig
    >>> staging = pathlib.Path(tempfile.mkdtemp())
    >>> w = FuseShards(FusionConfig(real="mnist-10k[:20]", counts="real=10", num_shards=2), staging, 2)
    >>> w.setup()
    >>> w.write(1), w.shard_path(1).name
    (5, 'data-00001-of-00002.tfrecord')
    """

    def __init__(self, cfg: FusionConfig, staging: str | os.PathLike, num_shards: int):
        self.cfg = cfg
        self.staging = os.fspath(staging)
        self.num_shards = num_shards
        self.layout = None

    def __getstate__(self):
        return {**self.__dict__, "layout": None}  # each worker builds its own

    def setup(self) -> None:
        self.layout = builder.Layout(self.cfg)

    def shard_path(self, k: int) -> Path:
        return Path(self.staging) / shard_name(k, self.num_shards)

    def write(self, k: int) -> int:
        staging = Path(self.staging)
        entry = builder._finished(staging, k, self.num_shards)
        if entry is None:  # not done by an earlier attempt that died before reporting
            entry = builder._write_one_shard(self.layout, staging, k)
        return entry["num_examples"]


__all__ = ["FuseShards", "fuse_on_beam"]
