"""Differential privacy: DP-SGD training with an accountant, and what it guarantees.

`tfsynth train --dp-epsilon E` trains a GAN whose discriminator takes
DP-SGD steps (`tfsynth.privacy.gan` says what is private) or a VAE whose
whole loss does (`tfsynth.privacy.vae`); the noise comes
from the budget through Google's dp-accounting (`accountant`). The
membership-inference audit that tests the guarantee is in
`tfsynth.evaluation.privacy`.

Example:

>>> plan = plan_privacy(DPConfig(epsilon=8.0), model="cgan", num_examples=8000,
...                     batch_size=64, steps=500)
>>> plan.epsilon_after(500) <= 8.0 < plan.epsilon_after(600)
True
"""

from tfsynth.privacy.accountant import epsilon_spent, noise_for_budget
from tfsynth.privacy.config import DEFAULT_CLIP, DEFAULT_DELTA, DPConfig
from tfsynth.privacy.plan import DP_MODELS, PrivacyPlan, plan_privacy
from tfsynth.privacy.wiring import guarantee

__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_DELTA",
    "DP_MODELS",
    "DPConfig",
    "PrivacyPlan",
    "epsilon_spent",
    "guarantee",
    "noise_for_budget",
    "plan_privacy",
]
