"""Tests of tfsynth.augment.draws: seeds, fingerprints, Philox draws."""

import keras
import numpy as np
import tensorflow as tf

from tests.conftest import make_arrays
from tfsynth.augment import draws


def test_stateless_seed_reproduces_keras_draws():
    layer = keras.layers.RandomRotation(0.2)
    x = tf.zeros((8, 8, 8, 1))
    a = layer.get_random_transformation(x, seed=draws.StatelessSeed([1, 2]))["angle"]
    b = layer.get_random_transformation(x, seed=draws.StatelessSeed([1, 2]))["angle"]
    c = layer.get_random_transformation(x, seed=draws.StatelessSeed([1, 3]))["angle"]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


def test_signed_uniform_pairs_is_seeded_symmetric_uniform():
    a = draws.signed_uniform_pairs((200, 50), seed=3).numpy()
    assert a.shape == (200, 50, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, draws.signed_uniform_pairs((200, 50), seed=3).numpy())
    assert not np.array_equal(a, draws.signed_uniform_pairs((200, 50), seed=4).numpy())
    assert -1.0 < a.min() < -0.99 and 0.99 < a.max() < 1.0
    # both halves of a word are uniform, with the variance elastic_field assumes
    for half in (a[..., 0], a[..., 1]):
        np.testing.assert_allclose([half.mean(), half.var()], [0.0, 1.0 / 3.0], atol=0.02)
        counts = np.histogram(half, bins=10, range=(-1, 1))[0]
        assert counts.min() > 0.85 * half.size / 10
    # the two halves are not correlated
    assert abs(np.corrcoef(a[..., 0].ravel(), a[..., 1].ravel())[0, 1]) < 0.03
    # exactly symmetric about 0: value k maps to (k + 0.5) / 32768 - 1
    k = np.round((a + 1.0) * 32768 - 0.5)
    np.testing.assert_allclose((k + 0.5) / 32768 - 1.0, a, atol=1e-7)


def test_batch_fingerprint_is_exact_and_sees_every_pixel_and_the_order():
    x = make_arrays(6, 8, 8, 1)[0]
    f = draws.batch_fingerprint
    assert f(x).dtype == tf.int64 and int(f(x)) == int(f(x.copy()))
    assert int(tf.function(f, jit_compile=True)(x)) == int(f(x))  # same under XLA
    y = x.copy()
    y[5, 7, 7, 0] ^= 1  # one bit of the last pixel
    assert int(f(y)) != int(f(x))
    assert int(f(x[::-1])) != int(f(x))  # same images, other order
    xf = x.astype(np.float32) / 127.5 - 1.0
    assert int(f(xf)) != int(f(xf + 1e-7))


def test_with_philox_draws_the_same_numbers_inside_and_outside_xla():
    layer = draws.with_philox(keras.layers.RandomRotation(0.2))
    assert draws.with_philox(layer) is layer
    x = tf.zeros((16, 8, 8, 1))

    def angles():
        return layer.get_random_transformation(x, seed=draws.StatelessSeed([1, 2]))["angle"]

    eager = angles().numpy()
    np.testing.assert_allclose(tf.function(angles, jit_compile=True)().numpy(), eager, rtol=1e-6)
    assert np.abs(eager).max() <= 0.2 * 360 and len(np.unique(eager)) == 16
