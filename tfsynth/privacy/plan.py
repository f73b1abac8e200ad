"""`PrivacyPlan`: a `DPConfig` resolved against one training run.

`plan_privacy` checks the request against the model and the data (before
anything is written) and fixes everything DP-SGD and the accountant need:
the noise multiplier (computed from the budget when not given), the
sampling rate, the physical batch of the Poisson draws and the step at
which the budget is spent. The plan is what a DP trainer carries in its
config (so a `.keras` file says how it was trained) and what the privacy
callback accounts with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tfsynth.errors import ConfigError
from tfsynth.privacy import accountant
from tfsynth.privacy.config import DPConfig
from tfsynth.privacy.sampling import TRUNCATION_SHARE, physical_batch_size

# The models DP-SGD supports: GANs whose discriminator loss splits into
# per-example real terms (no gradient penalty on real data, one critic step),
# and the VAEs, whose whole loss is a sum over examples.
DP_MODELS = ("dcgan", "hinge", "cgan", "vae", "cvae")


@dataclass(frozen=True)
class PrivacyPlan:
    """What a DP training run does and how it is accounted for.

    `epsilon` is the target (None: no budget stop, only reporting);
    `batch_size` the expected batch (sampling rate batch_size / num_examples);
    `physical_batch` the padded rows per step; `max_steps` the step at which
    the budget is spent (None without a target). Delta is the whole delta:
    the accountant gets (1 - TRUNCATION_SHARE) of it.

    Example:

    >>> p = PrivacyPlan(epsilon=None, delta=1e-5, clip=1.0, noise_multiplier=1.0,
    ...                 num_examples=1000, batch_size=10, physical_batch=20, steps=100)
    >>> p.sampling_rate, p.epsilon_after(0), 0 < p.epsilon_after(100) < p.epsilon_after(200)
    (0.01, 0.0, True)
    """

    epsilon: float | None
    delta: float
    clip: float
    noise_multiplier: float
    num_examples: int
    batch_size: int
    physical_batch: int
    steps: int
    max_steps: int | None = None
    sampling: str = "poisson"
    accountant: str = accountant.ACCOUNTANT

    @property
    def sampling_rate(self) -> float:
        return self.batch_size / self.num_examples

    @property
    def accountant_delta(self) -> float:
        return self.delta * (1.0 - TRUNCATION_SHARE)

    def epsilon_after(self, steps: int) -> float:
        """Epsilon at `delta` after `steps` DP-SGD steps."""
        return accountant.epsilon_spent(
            self.noise_multiplier, self.sampling_rate, int(steps), self.accountant_delta
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrivacyPlan:
        return cls(**d)


def check_model(model: str, *, loss: str | None, n_critic: int | None, precision: str) -> None:
    """Raises ConfigError when DP-SGD does not support this model or setting."""
    if model not in DP_MODELS:
        why = (
            "the diffusion trainer has no DP-SGD step"
            if model == "ddpm"
            else "its real-data gradients are not clipped per example"
        )
        raise ConfigError(
            f"--dp-epsilon: DP training supports {', '.join(DP_MODELS)}, not {model!r} ({why})"
        )
    if loss == "wgan-gp":
        raise ConfigError(
            "--dp-epsilon: DP training supports the dcgan and hinge losses, not wgan-gp"
        )
    if n_critic not in (None, 1):
        raise ConfigError(
            f"--dp-epsilon: DP training takes one critic step, got --n-critic {n_critic}"
        )
    if precision != "float32":
        raise ConfigError(f"--dp-epsilon: DP training runs in float32, got --precision {precision}")


def plan_privacy(
    dp: DPConfig, *, model: str, num_examples: int, batch_size: int, steps: int,
    loss: str | None = None, n_critic: int | None = None, precision: str = "float32",
) -> PrivacyPlan:  # fmt: skip
    """Checks `dp` against the run and resolves it (ConfigError: one line).

    Refuses delta >= 1/n (such a delta allows publishing a training image
    outright) and budgets that `steps` steps cannot meet.
    """
    dp = DPConfig.from_dict(dp) if isinstance(dp, dict) else dp.validate()
    check_model(model, loss=loss, n_critic=n_critic, precision=precision)
    if dp.delta >= 1.0 / num_examples:
        raise ConfigError(
            f"--dp-delta: must be < 1/n = {1.0 / num_examples:.3g} for {num_examples} training "
            f"images, got {dp.delta:g}"
        )
    q = batch_size / num_examples
    delta_acc = dp.delta * (1.0 - TRUNCATION_SHARE)
    sigma, max_steps = dp.noise_multiplier, None
    if sigma is None:
        sigma, max_steps = accountant.noise_for_budget(dp.epsilon, delta_acc, q, steps), steps
    elif dp.epsilon is not None:
        max_steps = accountant.max_steps_within(dp.epsilon, delta_acc, q, sigma, steps)
        if max_steps < 1:
            raise ConfigError(
                f"--dp-epsilon: one step at noise multiplier {sigma:g} already spends more than "
                f"epsilon {dp.epsilon:g}; raise --dp-noise-multiplier or --dp-epsilon"
            )
    run_steps = max_steps or steps
    eps = dp.epsilon or accountant.epsilon_spent(sigma, q, run_steps, delta_acc)
    physical = physical_batch_size(num_examples, batch_size, run_steps, eps, dp.delta)
    return PrivacyPlan(
        epsilon=dp.epsilon, delta=dp.delta, clip=dp.clip, noise_multiplier=float(sigma),
        num_examples=int(num_examples), batch_size=int(batch_size), physical_batch=physical,
        steps=int(steps), max_steps=max_steps, sampling=dp.sampling,
    )  # fmt: skip
