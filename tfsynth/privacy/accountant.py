"""The privacy accountant: epsilon spent by DP-SGD steps, and the noise a budget needs.

A thin layer over Google's `dp-accounting` (RDP accountant, add-or-remove-
one neighbouring datasets): one DP-SGD step is a Poisson-subsampled
Gaussian mechanism (sampling rate q = batch / n, noise multiplier sigma),
and k steps are its k-fold composition.

Example:

>>> eps = epsilon_spent(1.1, 256 / 60000, 60 * 60000 // 256, 1e-5)
>>> 2.0 < eps < 4.0
True
>>> sigma = noise_for_budget(eps, 1e-5, 256 / 60000, 60 * 60000 // 256)
>>> abs(sigma - 1.1) < 1e-3
True
"""

from __future__ import annotations

from tfsynth.errors import ConfigError

ACCOUNTANT = "rdp"
# The search range of the noise multiplier: below MIN_NOISE the RDP bound is
# loose and training barely differs from non-private; a budget that needs
# more than MAX_NOISE buys a model the noise has drowned.
MIN_NOISE, MAX_NOISE = 0.3, 50.0


def _dp_accounting():
    try:
        import dp_accounting
    except ImportError:
        raise ConfigError(
            "--dp-epsilon: DP training needs Google's dp-accounting; pip install 'tfsynth[privacy]'"
        ) from None
    return dp_accounting


def dp_event(noise_multiplier: float, sampling_rate: float, steps: int):
    """The `dp_accounting.DpEvent` of `steps` DP-SGD steps."""
    dpa = _dp_accounting()
    step = dpa.PoissonSampledDpEvent(sampling_rate, dpa.GaussianDpEvent(noise_multiplier))
    return dpa.SelfComposedDpEvent(step, int(steps))


def _accountant():
    from dp_accounting.rdp import RdpAccountant

    return RdpAccountant()


def epsilon_spent(noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> float:
    """Epsilon at `delta` after `steps` DP-SGD steps (0 before the first)."""
    if steps <= 0:
        return 0.0
    acc = _accountant()
    acc.compose(dp_event(noise_multiplier, sampling_rate, steps))
    return float(acc.get_epsilon(delta))


def noise_for_budget(epsilon: float, delta: float, sampling_rate: float, steps: int) -> float:
    """The smallest noise multiplier whose `steps` steps spend at most `epsilon`.

    Raises ConfigError when even MAX_NOISE spends more (the settings cannot
    meet the budget).
    """
    dpa = _dp_accounting()
    if epsilon_spent(MAX_NOISE, sampling_rate, steps, delta) > epsilon:
        raise ConfigError(
            f"--dp-epsilon: {epsilon:g} at delta {delta:g} over {steps} steps at sampling rate "
            f"{sampling_rate:.4g} needs a noise multiplier above {MAX_NOISE:g}; raise epsilon, "
            "train fewer steps or use more data"
        )
    if epsilon_spent(MIN_NOISE, sampling_rate, steps, delta) <= epsilon:
        return MIN_NOISE
    sigma = dpa.calibrate_dp_mechanism(
        _accountant,
        lambda s: dp_event(s, sampling_rate, steps),
        epsilon,
        delta,
        dpa.ExplicitBracketInterval(MIN_NOISE, MAX_NOISE),
        tol=1e-4,
    )
    # Brent's method lands within tol of the optimum, possibly on its wrong side.
    while epsilon_spent(sigma, sampling_rate, steps, delta) > epsilon:
        sigma += 1e-4
    return float(sigma)


def max_steps_within(
    epsilon: float, delta: float, sampling_rate: float, noise_multiplier: float, steps: int
) -> int:
    """The most steps (at most `steps`) whose spent epsilon stays within `epsilon`."""
    if epsilon_spent(noise_multiplier, sampling_rate, steps, delta) <= epsilon:
        return int(steps)
    lo, hi = 0, int(steps)  # eps(lo) <= epsilon < eps(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if epsilon_spent(noise_multiplier, sampling_rate, mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo
