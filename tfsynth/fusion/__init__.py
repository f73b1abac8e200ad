"""D': a streaming, sharded, provenance-tagged fusion of real, augmented and generated data.

- `build_fused(config or fields, out=...)` -> manifest (see `tfsynth.fusion.builder`);
- `materialize(config or fields)` -> the same D' as an in-memory `ImageDataset`;
- `FusionConfig`: what goes into D';
- `tfsynth.fusion.plan`: ratios and class targets -> exact per-source, per-class counts.
"""

from tfsynth.fusion.builder import FORMATS, FusionConfig, build_fused, materialize
from tfsynth.fusion.plan import apportion, class_totals, solve_counts, source_totals
from tfsynth.fusion.sources import PROVENANCE

__all__ = [
    "FORMATS",
    "PROVENANCE",
    "FusionConfig",
    "apportion",
    "build_fused",
    "class_totals",
    "materialize",
    "solve_counts",
    "source_totals",
]
