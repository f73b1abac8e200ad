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


def test_uniform_is_seeded_philox_in_range_and_the_same_under_xla():
    a = draws.uniform((200, 50, 2), -1.0, 1.0, seed=3).numpy()
    assert a.shape == (200, 50, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, draws.uniform((200, 50, 2), -1.0, 1.0, seed=3).numpy())
    assert not np.array_equal(a, draws.uniform((200, 50, 2), -1.0, 1.0, seed=4).numpy())
    assert -1.0 <= a.min() < -0.99 and 0.99 < a.max() < 1.0
    # mean 0 and variance 1/3 (what elastic.bspline_rms assumes), flat histogram
    np.testing.assert_allclose([a.mean(), a.var()], [0.0, 1.0 / 3.0], atol=0.01)
    counts = np.histogram(a, bins=10, range=(-1, 1))[0]
    assert counts.min() > 0.9 * a.size / 10

    # the same numbers inside XLA, from a Keras seed object as from an int
    def draw():
        return draws.uniform((200, 50, 2), -1.0, 1.0, seed=draws.StatelessSeed([3, 0]))

    np.testing.assert_array_equal(tf.function(draw, jit_compile=True)().numpy(), draw().numpy())


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
