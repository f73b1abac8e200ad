"""Tests of tfsynth.augment.warp: matrices, grids and one resampling, against Keras and NumPy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_arrays
from tfsynth.augment import draws, elastic, resampling, warp
from tfsynth.augment.layers import ElasticDistortion


def _matrices(rows, b=4):
    return tf.tile(tf.constant([rows], tf.float32), [b, 1, 1])


@pytest.mark.parametrize("fill_mode", resampling.FILL_MODES)
def test_warp_with_identity_matrix_is_exact(fill_mode):
    x = tf.constant(make_arrays(4, 16, 16, 3)[0], tf.float32)
    out = warp.warp_xla(x, warp.identity_matrices(4), fill_mode=fill_mode)
    np.testing.assert_array_equal(out.numpy(), x.numpy())


def test_warp_integer_shift_matches_numpy():
    x = make_arrays(4, 16, 16, 1)[0].astype(np.float32)
    # Output (y, x) reads input (y, x + 2): the image moves 2 pixels left.
    m = _matrices([[1, 0, 2], [0, 1, 0], [0, 0, 1]])
    out = warp.warp_xla(tf.constant(x), m, fill_mode="constant", fill_value=7.0).numpy()
    expected = np.full_like(x, 7.0)
    expected[:, :, :-2] = x[:, :, 2:]
    np.testing.assert_allclose(out, expected)
    wrapped = warp.warp_xla(tf.constant(x), m, fill_mode="wrap").numpy()
    np.testing.assert_allclose(wrapped, np.roll(x, -2, axis=2))


def test_warp_half_pixel_is_bilinear_average():
    x = make_arrays(2, 8, 8, 1)[0].astype(np.float32)
    m = _matrices([[1, 0, 0.5], [0, 1, 0], [0, 0, 1]], b=2)
    out = warp.warp_xla(tf.constant(x), m, fill_mode="nearest").numpy()
    np.testing.assert_allclose(out[:, :, :-1], (x[:, :, :-1] + x[:, :, 1:]) / 2, rtol=1e-5)


def test_warp_uint8_output_rounds_and_keeps_dtype():
    x = tf.constant(make_arrays(2, 8, 8, 1)[0])
    out = warp.warp_xla(x, warp.identity_matrices(2), output_dtype="uint8")
    assert out.dtype == tf.uint8
    np.testing.assert_array_equal(out.numpy(), x.numpy())


@pytest.mark.parametrize(
    "layer",
    [
        keras.layers.RandomRotation(0.0),
        keras.layers.RandomTranslation(0.0, 0.0),
        keras.layers.RandomZoom(0.0),
    ],
    ids=["rotation", "translation", "zoom"],
)
def test_keras_geometric_layers_at_factor_zero_give_identity_matrices(layer):
    x = tf.zeros((3, 16, 16, 1))
    t = layer.get_random_transformation(x, seed=draws.StatelessSeed([0, 1]))
    m = warp.geometric_matrix(layer, t, 16, 16)
    np.testing.assert_allclose(m.numpy(), np.tile(np.eye(3), (3, 1, 1)), atol=1e-6)


def test_flip_matrix_matches_keras_flip():
    layer = keras.layers.RandomFlip("horizontal_and_vertical")
    x = tf.constant(make_arrays(8, 8, 8, 1)[0], tf.float32)
    t = layer.get_random_transformation(x, seed=draws.StatelessSeed([3, 4]))
    warped = warp.warp_xla(x, warp.geometric_matrix(layer, t, 8, 8), fill_mode="constant")
    np.testing.assert_array_equal(warped.numpy(), layer.transform_images(x, t).numpy())


@pytest.mark.parametrize("interpolation", resampling.INTERPOLATIONS)
@pytest.mark.parametrize("fill_mode", ["constant", "nearest", "reflect"])
def test_warp_matches_keras_affine_transform(fill_mode, interpolation):
    # "wrap" is periodic here (see test_warp_integer_shift_matches_numpy);
    # TensorFlow's kernel wraps the coordinate with a seam at the border.
    # A rotation by ~17 degrees plus a shift moves pixels across every border.
    x = tf.constant(make_arrays(3, 12, 10, 2)[0], tf.float32)
    a, tx, ty = 0.3, 2.5, -1.25
    params = tf.tile([[np.cos(a), -np.sin(a), tx, np.sin(a), np.cos(a), ty, 0.0, 0.0]], [3, 1])
    expected = keras.ops.image.affine_transform(
        x, params, interpolation=interpolation, fill_mode=fill_mode, fill_value=5.0
    )
    out = warp.warp_xla(
        x, warp.to_matrix(params), fill_mode=fill_mode, fill_value=5.0, interpolation=interpolation
    )
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-3)


def test_spline_source_grid_equals_the_per_pixel_affine_map():
    b, h, w = 3, 20, 17
    layer = ElasticDistortion(alpha=0.05)
    t = layer.get_random_transformation(tf.zeros((b, h, w, 1)), seed=draws.StatelessSeed([4, 2]))
    a = 0.4
    params = tf.tile([[np.cos(a), -np.sin(a), 3.0, np.sin(a) * 1.1, np.cos(a), -2.0, 0, 0]], [b, 1])
    m = warp.to_matrix(params)
    d = elastic.elastic_field(t["noise"], h, w, t["step"]) * t["alpha"]
    want_y, want_x = warp.source_grid(m, h, w, d)
    got_y, got_x = warp.spline_source_grid(m, t, h, w)
    np.testing.assert_allclose(got_y.numpy(), want_y.numpy(), atol=1e-4)
    np.testing.assert_allclose(got_x.numpy(), want_x.numpy(), atol=1e-4)
    x = tf.constant(make_arrays(b, h, w, 1)[0], tf.float32)
    fast = warp.warp_xla(x, m, (t,), affine=True)
    np.testing.assert_allclose(fast.numpy(), warp.warp_xla(x, m, (t,)).numpy(), atol=0.05)
