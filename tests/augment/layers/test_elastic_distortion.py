"""Tests of ElasticDistortion."""

import numpy as np

from tests.augment.layers.contract import check_layer_contract
from tests.conftest import make_arrays
from tfsynth.augment.layers import ElasticDistortion


def test_elastic_distortion_contract():
    check_layer_contract(lambda: ElasticDistortion(alpha=0.05, seed=1))


def test_elastic_distortion_is_identity_at_strength_zero():
    x = make_arrays(4, 16, 16, 1)[0]
    np.testing.assert_array_equal(ElasticDistortion(alpha=0.0)(x, training=True).numpy(), x)
