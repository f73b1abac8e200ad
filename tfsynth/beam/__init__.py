"""D' and D_gen built on Apache Beam: one element per shard (see docs/beam.md).

- `fuse_on_beam(config, out=..., beam=BeamConfig(...))`: `build_fused` on Beam;
- `generate_on_beam(model, n, out=..., beam=...)`: `generate` on Beam;
- `BeamConfig`: the runner and its pipeline options.

Both write the same bytes as the local builders; Apache Beam is an
optional extra (``pip install "tfsynth[beam]"``), imported only when used.
"""

from tfsynth.beam.fuse import fuse_on_beam
from tfsynth.beam.options import BeamConfig, check_runner, require_beam
from tfsynth.beam.sample import generate_on_beam

__all__ = ["BeamConfig", "check_runner", "fuse_on_beam", "generate_on_beam", "require_beam"]
