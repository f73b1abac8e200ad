"""The accountant against dp-accounting itself, and the plan's refusals."""

import math

import dp_accounting
import pytest
from dp_accounting.pld import PLDAccountant
from dp_accounting.rdp import RdpAccountant

from tfsynth.errors import ConfigError
from tfsynth.privacy import DPConfig, plan_privacy
from tfsynth.privacy.accountant import epsilon_spent, max_steps_within, noise_for_budget
from tfsynth.privacy.sampling import TRUNCATION_SHARE


def _direct(sigma, q, steps, delta, accountant):
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    acc = accountant()
    acc.compose(event)
    return acc.get_epsilon(delta)


def test_epsilon_equals_dp_accountings_direct_computation():
    sigma, q, steps, delta = 1.1, 64 / 8000, 500, 1e-5
    eps = epsilon_spent(sigma, q, steps, delta)
    assert eps == pytest.approx(_direct(sigma, q, steps, delta, RdpAccountant), rel=1e-12)
    # RDP is an upper bound of the tight PLD epsilon, and not far above it.
    assert (
        _direct(sigma, q, steps, delta, PLDAccountant)
        <= eps
        < 1.5 * _direct(sigma, q, steps, delta, PLDAccountant)
    )
    assert epsilon_spent(sigma, q, 0, delta) == 0.0


def test_noise_for_budget_is_the_smallest_noise_within_it():
    q, steps, delta = 64 / 8000, 300, 1e-5
    sigma = noise_for_budget(4.0, delta, q, steps)
    assert (
        epsilon_spent(sigma, q, steps, delta) <= 4.0 < epsilon_spent(sigma - 1e-3, q, steps, delta)
    )


def test_max_steps_within_stops_at_the_last_step_within_budget():
    q, delta, sigma = 0.02, 1e-5, 1.0
    k = max_steps_within(2.0, delta, q, sigma, 10_000)
    assert 0 < k < 10_000
    assert epsilon_spent(sigma, q, k, delta) <= 2.0 < epsilon_spent(sigma, q, k + 1, delta)


def test_plan_meets_the_target_with_the_truncation_share_of_delta_set_aside():
    plan = plan_privacy(
        DPConfig(epsilon=5.0), model="cgan", num_examples=4000, batch_size=32, steps=400
    )
    assert plan.max_steps == 400 and plan.sampling_rate == 32 / 4000
    assert plan.epsilon_after(400) <= 5.0
    direct = _direct(
        plan.noise_multiplier, 32 / 4000, 400, 1e-5 * (1 - TRUNCATION_SHARE), RdpAccountant
    )
    assert plan.epsilon_after(400) == pytest.approx(direct, rel=1e-12)
    assert 32 < plan.physical_batch < 4000


def test_plan_with_noise_and_budget_stops_early():
    plan = plan_privacy(
        DPConfig(epsilon=3.0, noise_multiplier=0.8), model="dcgan", num_examples=1000,
        batch_size=20, steps=5000,
    )  # fmt: skip
    assert 0 < plan.max_steps < 5000
    assert plan.epsilon_after(plan.max_steps) <= 3.0 < plan.epsilon_after(plan.max_steps + 1)


@pytest.mark.parametrize(
    "dp, kwargs, words",
    [
        (DPConfig(epsilon=0.0), {}, "--dp-epsilon: epsilon must be > 0"),
        (DPConfig(epsilon=-1.0), {}, "--dp-epsilon: epsilon must be > 0"),
        (DPConfig(epsilon=math.inf), {}, "--dp-epsilon: expected a finite number"),
        (DPConfig(epsilon=1.0, clip=0.0), {}, "--dp-clip: the clip norm must be > 0"),
        (DPConfig(epsilon=1.0, delta=1e-3), {}, "--dp-delta: must be < 1/n = 0.001"),
        (DPConfig(delta=1e-6), {}, "needs a target epsilon or a noise multiplier"),
        (DPConfig(epsilon=1.0), {"model": "ddpm"}, "DP training supports dcgan, hinge, cgan"),
        (DPConfig(epsilon=1.0), {"model": "ddpm"}, "the diffusion trainer has no DP-SGD step"),
        (DPConfig(epsilon=1.0), {"model": "wgan-gp"}, "not clipped per example"),
        (DPConfig(epsilon=1.0), {"loss": "wgan-gp"}, "not wgan-gp"),
        (DPConfig(epsilon=1.0), {"precision": "mixed_float16"}, "runs in float32"),
        (DPConfig(epsilon=1e-3), {"steps": 5000}, "needs a noise multiplier above"),
        (DPConfig(epsilon=0.5, noise_multiplier=0.5), {}, "one step at noise multiplier 0.5"),
    ],
)
def test_plan_refuses_with_one_line(dp, kwargs, words):
    args = {"model": "cgan", "num_examples": 1000, "batch_size": 20, "steps": 100, **kwargs}
    with pytest.raises(ConfigError) as e:
        plan_privacy(dp, **args)
    assert words in str(e.value) and "\n" not in str(e.value)
