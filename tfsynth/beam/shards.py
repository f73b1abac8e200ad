"""One Beam pipeline shape for every sharded build: an element is a shard index.

A *writer* is a picklable object with ``setup()`` (load the model, the
policy, the plan: once per worker), ``write(k)`` (write shard k, complete
or not at all, and return its example count) and ``shard_path(k)``. The
pipeline is ``Create(shards) | Reshuffle | ParDo(WriteShard(writer))``;
the reshuffle spreads the shards over the workers (without it a runner
may fuse the small ``Create`` with the writes onto one worker).

A retried element writes its shard again from the start: shards are a
pure function of the plan, written under a temporary name and renamed, so
a retry overwrites and never appends rows.

Test hook: with ``TFSYNTH_BEAM_FAIL_ONCE=K:DIR`` the first attempt at
shard K (across processes: a marker file in DIR records it) leaves a
truncated temporary file beside the shard, as a killed worker would, and
raises.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tfsynth.beam.options import BeamConfig, require_beam

FAIL_ONCE = "TFSYNTH_BEAM_FAIL_ONCE"


def run_shards(config: BeamConfig, shards: Iterable[int], writer) -> None:
    """Runs ``writer.write(k)`` for every k in `shards` on Beam; returns when all are done.

    Raises whatever the runner raises when a shard fails for good (the
    DirectRunner does not retry; Dataflow retries an element 4 times).
    """
    beam = require_beam()
    options = config.pipeline_options()
    shards = list(shards)
    if not shards:
        return
    with beam.Pipeline(options=options) as p:
        _ = (
            p
            | "Shards" >> beam.Create(shards)
            | "Spread" >> beam.Reshuffle()
            | "Write" >> beam.ParDo(_write_shard_class()(writer))
        )


def fail_once(writer, k: int) -> None:
    """The test hook (see the module docstring); does nothing unless it is set."""
    spec = os.environ.get(FAIL_ONCE)
    if not spec:
        return
    index, _, marker_dir = spec.partition(":")
    marker = Path(marker_dir) / f"failed-{int(index)}"
    if int(index) != k or marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    path = Path(writer.shard_path(k))
    (path.parent / f".{path.name}.tmp-killed").write_bytes(b"\x10\0\0\0truncated")
    raise RuntimeError(f"{FAIL_ONCE}: injected failure of shard {k} (first attempt)")


_CLASS = []


def _write_shard_class():
    """The `beam.DoFn` class, made on first use so that importing tfsynth needs no Beam."""
    if _CLASS:
        return _CLASS[0]
    beam = require_beam()

    class WriteShard(beam.DoFn):
        """Writes the shards it is given with a writer set up once per worker."""

        def __init__(self, writer):
            super().__init__()
            self.writer = writer

        def setup(self):
            self.writer.setup()

        def process(self, k):
            fail_once(self.writer, k)
            yield self.writer.write(k)

    WriteShard.__module__, WriteShard.__qualname__ = __name__, "WriteShard"
    _CLASS.append(WriteShard)
    return WriteShard


def __getattr__(name: str):
    # Workers unpickle the DoFn by reference: tfsynth.beam.shards.WriteShard.
    if name == "WriteShard":
        return _write_shard_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FAIL_ONCE", "fail_once", "run_shards"]
