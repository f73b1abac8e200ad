import numpy as np
import pytest

from tests.evaluation.conftest import separable
from tfsynth.data import ImageDataset
from tfsynth.errors import ConfigError, DataError
from tfsynth.evaluation.utility import low_data_curve, subset, utility_metrics

FAST = {"epochs": 2, "batch_size": 8, "width": 4, "min_steps": 0}


def test_good_synthetic_data_scores_high_and_the_curve_is_complete():
    real, syn, test = separable(24, 0), separable(24, 1, name="syn"), separable(20, 2)
    out = utility_metrics(real, syn, test, seeds=[0, 1], low_data_sizes=[6, 1000], **FAST)
    for key in ("trtr_accuracy", "tstr_accuracy", "fused_accuracy"):
        assert out[key] >= 0.9, key
        assert len(out[f"{key}_runs"]) == 2 and out[f"{key}_std"] >= 0
    assert out["real_only_accuracy"] == out["trtr_accuracy"]
    assert out["fused_source"] == "real+synthetic" and out["num_fused"] == 48
    # 1000 > len(real) is clipped to "all"; "all" reuses the TRTR and D' runs.
    assert out["low_data_sizes"] == [6, 24]
    assert out["low_data.24.real"] == out["trtr_accuracy"]
    assert out["low_data.24.real+synthetic"] == out["fused_accuracy"]
    curve = low_data_curve(out)
    assert curve["real"]["sizes"] == [6, 24] and len(curve["real+synthetic"]["std"]) == 2


def test_wrong_synthetic_labels_are_caught_by_tstr_and_trts():
    real, test = separable(24, 0), separable(20, 2)
    flipped = separable(24, 1, flip=True, name="flipped")
    # An explicit D' (here the real set itself) is used as given.
    longer = {**FAST, "epochs": 4}  # 12 steps: 6 leave some seeds half-way to the flipped rule
    out = utility_metrics(real, flipped, test, fused=real, seeds=1, low_data_sizes=None, **longer)
    assert out["tstr_accuracy"] <= 0.1 and out["trts_accuracy"] <= 0.1
    assert out["trtr_accuracy"] >= 0.9
    assert out["fused_source"] == "explicit" and out["fused_accuracy"] >= 0.9
    assert "low_data_sizes" not in out


def test_subset_is_seeded_and_bad_inputs_fail():
    real = separable(24, 0)
    assert np.array_equal(subset(real, 5, 3).images, subset(real, 5, 3).images)
    assert len(subset(real, 100, 0)) == 24
    rgb = ImageDataset(np.zeros((4, 16, 16, 3), np.uint8), [0, 1, 0, 1], name="rgb")
    with pytest.raises(DataError, match="rgb: images are 16x16x3 but sep has 16x16x1"):
        utility_metrics(real, rgb, real, seeds=1)
    three = ImageDataset(np.zeros((3, 16, 16, 1), np.uint8), [0, 1, 2], name="three")
    with pytest.raises(DataError, match="three: 3 classes but sep has 2"):
        utility_metrics(real, real, three, seeds=1)
    with pytest.raises(ConfigError, match="seeds"):
        utility_metrics(real, real, real, seeds=0)
