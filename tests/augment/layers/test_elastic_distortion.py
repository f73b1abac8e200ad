"""Tests of ElasticDistortion."""

import numpy as np
import tensorflow as tf

from tests.augment.layers.contract import check_layer_contract
from tests.conftest import make_arrays
from tfsynth.augment.draws import StatelessSeed
from tfsynth.augment.layers import ElasticDistortion


def test_elastic_distortion_contract():
    check_layer_contract(lambda: ElasticDistortion(alpha=0.05, seed=1))


def test_elastic_distortion_is_identity_at_strength_zero():
    x = make_arrays(4, 16, 16, 1)[0]
    np.testing.assert_array_equal(ElasticDistortion(alpha=0.0)(x, training=True).numpy(), x)


def test_elastic_distortion_draws_seeded_control_point_noise():
    layer = ElasticDistortion(alpha=0.05, sigma=0.12)
    x = tf.zeros((64, 28, 28, 1))

    def noise(seed):
        return layer.get_random_transformation(x, seed=StatelessSeed(seed))["noise"].numpy()

    a = noise([1, 2])
    assert a.shape == (64, 8, 8, 2)  # control points 6 pixels apart, (dy, dx)
    np.testing.assert_array_equal(a, noise([1, 2]))
    assert not np.array_equal(a, noise([1, 3]))
    assert a.min() >= -1.0 and a.max() < 1.0
    # symmetric with the variance 1/3 that the field's normalization assumes
    np.testing.assert_allclose([a.mean(), a.var()], [0.0, 1.0 / 3.0], atol=0.02)
    # dy and dx are independent
    assert abs(np.corrcoef(a[..., 0].ravel(), a[..., 1].ravel())[0, 1]) < 0.05
