import pytest

from tfsynth.config import PRESETS, RunConfig, preset
from tfsynth.errors import ConfigError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_validate_and_round_trip(name):
    cfg = preset(name)
    assert cfg.preset == name
    assert RunConfig.from_json(cfg.to_json()) == cfg


def test_overrides():
    cfg = preset("smoke", data="npz:x.npz", model="vae", seed=7)
    assert (cfg.data.spec, cfg.train.model, cfg.seed) == ("npz:x.npz", "vae", 7)


def test_bad_values_name_the_field():
    with pytest.raises(ConfigError, match="train.model: 'gpt' is not one of"):
        preset("smoke", model="gpt")
    with pytest.raises(ConfigError, match="--preset: 'huge'"):
        preset("huge")
    with pytest.raises(ConfigError, match=r"train\.: unknown field\(s\) epoch"):
        RunConfig.from_dict({"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{")
    cfg = preset("smoke")
    cfg.train.epochs = 0
    with pytest.raises(ConfigError, match="train.epochs: expected a positive integer"):
        cfg.validate()
