"""The trainer contract (tests.helpers.run_trainer_contract) for every model name.

One case per train_step path: each GAN x n_critic {1, 2} x R1 on/off (WGAN-GP's
gradient penalty is always on), a conditional hinge GAN with DiffAugment and R1,
a conditional WGAN-GP, the VAE and the ddpm (v-prediction with guidance)
conditional or not.
"""

import pytest

from tests.helpers import GAN_NAMES, run_trainer_contract
from tfsynth.models import MODEL_NAMES, is_conditional


def _cases():
    # n_critic 2 without a penalty is the path that once updated a None penalty tracker.
    for name in GAN_NAMES:
        for n_critic in (1, 2):
            for r1 in (0.0, 1.0):
                opts = {"n_critic": n_critic, "r1_gamma": r1}
                yield pytest.param(name, opts, 3, id=f"{name}-critic{n_critic}-r1_{r1:g}")
    aug = {"loss": "hinge", "r1_gamma": 1.0, "diffaugment": "translation,cutout,color"}
    yield pytest.param("cgan", aug, 3, id="cgan-hinge-diffaugment-r1")
    yield pytest.param("cgan", {"loss": "wgan-gp", "n_critic": 2}, 3, id="cgan-wgan-gp")
    yield pytest.param("vae", {}, 3, id="vae")
    yield pytest.param("cvae", {}, 3, id="cvae")
    # The smallest U-Net here; the conditional case keeps the default one (attention included).
    small = {"sample_steps": 2, "levels": 1, "attention": False}
    yield pytest.param("ddpm", small, 1, id="ddpm-unconditional")
    ddpm = {"sample_steps": 2, "prediction": "v", "guidance": 2.0}
    yield pytest.param("ddpm", ddpm, 3, id="ddpm-conditional-v")


CASES = list(_cases())


def test_the_cases_cover_every_model_name():
    assert {c.values[0] for c in CASES} == set(MODEL_NAMES)


@pytest.mark.parametrize("name, options, num_classes", CASES)
def test_trainer_contract(name, options, num_classes, tmp_path):
    m, hist = run_trainer_contract(name, options, tmp_path, num_classes=num_classes)
    assert m.num_classes == (num_classes if is_conditional(name, num_classes) else 0)
    if name in GAN_NAMES:
        penalized = "wgan-gp" in (name, options.get("loss")) or options.get("r1_gamma", 0) > 0
        assert ("penalty" in hist) == penalized
        if penalized:
            assert hist["penalty"][0] >= 0
