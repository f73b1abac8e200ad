"""`DPConfig`: what a user asks of differentially private training."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from tfsynth.errors import ConfigError

DEFAULT_DELTA = 1e-5
DEFAULT_CLIP = 1.0
# Only Poisson sampling is offered: its amplification is what the accountant
# computes. The shuffled fixed-size batches of the non-private path are not
# accounted for (see docs/design.md).
SAMPLINGS = ("poisson",)


def _positive(name: str, value, *, flag: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{flag}: expected a finite number > 0, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{flag}: {name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class DPConfig:
    """A privacy budget (epsilon, delta) and the DP-SGD settings that spend it.

    Give `epsilon` and the noise multiplier is computed from the budget, the
    batch size, the data size and the steps (`tfsynth.privacy.plan_privacy`);
    give `noise_multiplier` and the epsilon it spends is reported; give both
    and training stops when the budget is spent. `clip` is the L2 norm each
    example's gradient is clipped to; `sampling` how batches are drawn
    ("poisson": every example joins each step's batch independently with
    probability batch_size / n).

    Example:

    >>> DPConfig(epsilon=10).validate().delta
    1e-05
    >>> DPConfig.from_dict(DPConfig(epsilon=1, clip=0.5).to_dict()).clip
    0.5
    """

    epsilon: float | None = None
    delta: float = DEFAULT_DELTA
    clip: float = DEFAULT_CLIP
    noise_multiplier: float | None = None
    sampling: str = "poisson"

    def validate(self) -> DPConfig:
        """Returns self, or raises ConfigError naming the first bad field."""
        if self.epsilon is None and self.noise_multiplier is None:
            raise ConfigError(
                "--dp-epsilon: DP training needs a target epsilon or a noise multiplier"
            )
        if self.epsilon is not None:
            _positive("epsilon", self.epsilon, flag="--dp-epsilon")
        if self.noise_multiplier is not None:
            _positive("the noise multiplier", self.noise_multiplier, flag="--dp-noise-multiplier")
        _positive("the clip norm", self.clip, flag="--dp-clip")
        _positive("delta", self.delta, flag="--dp-delta")
        if self.delta >= 1:
            raise ConfigError(f"--dp-delta: must be < 1, got {self.delta!r}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(
                f"dp sampling: expected one of {', '.join(SAMPLINGS)}, got {self.sampling!r}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DPConfig:
        from tfsynth.config import _from_dict  # config imports this module

        return _from_dict(cls, d, "dp config").validate()
