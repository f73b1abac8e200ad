import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_arrays
from tfsynth.augment import ops


def _matrices(rows, b=4):
    return tf.tile(tf.constant([rows], tf.float32), [b, 1, 1])


@pytest.mark.parametrize("fill_mode", ops.FILL_MODES)
def test_warp_with_identity_matrix_is_exact(fill_mode):
    x = tf.constant(make_arrays(4, 16, 16, 3)[0], tf.float32)
    out = ops.warp_xla(x, ops.identity_matrices(4), fill_mode=fill_mode)
    np.testing.assert_array_equal(out.numpy(), x.numpy())


def test_warp_integer_shift_matches_numpy():
    x = make_arrays(4, 16, 16, 1)[0].astype(np.float32)
    # Output (y, x) reads input (y, x + 2): the image moves 2 pixels left.
    m = _matrices([[1, 0, 2], [0, 1, 0], [0, 0, 1]])
    out = ops.warp_xla(tf.constant(x), m, fill_mode="constant", fill_value=7.0).numpy()
    expected = np.full_like(x, 7.0)
    expected[:, :, :-2] = x[:, :, 2:]
    np.testing.assert_allclose(out, expected)
    wrapped = ops.warp_xla(tf.constant(x), m, fill_mode="wrap").numpy()
    np.testing.assert_allclose(wrapped, np.roll(x, -2, axis=2))


def test_warp_half_pixel_is_bilinear_average():
    x = make_arrays(2, 8, 8, 1)[0].astype(np.float32)
    m = _matrices([[1, 0, 0.5], [0, 1, 0], [0, 0, 1]], b=2)
    out = ops.warp_xla(tf.constant(x), m, fill_mode="nearest").numpy()
    np.testing.assert_allclose(out[:, :, :-1], (x[:, :, :-1] + x[:, :, 1:]) / 2, rtol=1e-5)


def test_warp_uint8_output_rounds_and_keeps_dtype():
    x = tf.constant(make_arrays(2, 8, 8, 1)[0])
    out = ops.warp_xla(x, ops.identity_matrices(2), output_dtype="uint8")
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
    t = layer.get_random_transformation(x, seed=ops.StatelessSeed([0, 1]))
    m = ops.geometric_matrix(layer, t, 16, 16)
    np.testing.assert_allclose(m.numpy(), np.tile(np.eye(3), (3, 1, 1)), atol=1e-6)


def test_flip_matrix_matches_keras_flip():
    layer = keras.layers.RandomFlip("horizontal_and_vertical")
    x = tf.constant(make_arrays(8, 8, 8, 1)[0], tf.float32)
    t = layer.get_random_transformation(x, seed=ops.StatelessSeed([3, 4]))
    warped = ops.warp_xla(x, ops.geometric_matrix(layer, t, 8, 8), fill_mode="constant")
    np.testing.assert_array_equal(warped.numpy(), layer.transform_images(x, t).numpy())


def test_stateless_seed_reproduces_keras_draws():
    layer = keras.layers.RandomRotation(0.2)
    x = tf.zeros((8, 8, 8, 1))
    a = layer.get_random_transformation(x, seed=ops.StatelessSeed([1, 2]))["angle"]
    b = layer.get_random_transformation(x, seed=ops.StatelessSeed([1, 2]))["angle"]
    c = layer.get_random_transformation(x, seed=ops.StatelessSeed([1, 3]))["angle"]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


@pytest.mark.parametrize(
    "make",
    [
        lambda: ops.ElasticDistortion(alpha=0.05, seed=1),
        lambda: ops.RandomErasing(probability=1.0, seed=1),
    ],
    ids=["elastic", "erasing"],
)
def test_custom_layers_contract(make):
    layer = make()
    x = make_arrays(4, 16, 16, 3)[0]
    # identity at inference
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    out = layer(x, training=True).numpy()
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert not np.array_equal(out, x)
    # same seed -> same output; config round trip rebuilds the same layer
    clone = type(layer).from_config(layer.get_config())
    np.testing.assert_array_equal(make()(x).numpy(), clone(x).numpy())
    # float input keeps its dtype and range
    xf = x.astype(np.float32)
    yf = layer(xf).numpy()
    assert yf.dtype == np.float32 and yf.min() >= 0 and yf.max() <= 255


def test_custom_layers_are_identity_at_strength_zero():
    x = make_arrays(4, 16, 16, 1)[0]
    for layer in (ops.ElasticDistortion(alpha=0.0), ops.RandomErasing(probability=0.0)):
        np.testing.assert_array_equal(layer(x, training=True).numpy(), x)


def test_elastic_field_is_smooth_with_unit_expected_rms():
    step = ops.elastic_step(0.12, 28, 28)
    n = ops.control_points(28, step)
    noise = ops.signed_uniform_pairs((64, n, n), seed=1)  # what ElasticDistortion draws
    field = ops.elastic_field(noise, 28, 28, step).numpy()
    assert (step, field.shape) == (6, (64, 28, 28, 2))
    # unit RMS on average over images (each image varies, as in Simard et al.)
    np.testing.assert_allclose(np.sqrt((field**2).mean()), 1.0, rtol=0.05)
    # neighbouring pixels move together (smooth), unlike white noise
    step_size = np.abs(np.diff(field, axis=1)).mean()
    assert step_size < 0.3 * np.abs(field).mean()


def test_signed_uniform_pairs_is_seeded_symmetric_uniform():
    a = ops.signed_uniform_pairs((200, 50), seed=3).numpy()
    assert a.shape == (200, 50, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, ops.signed_uniform_pairs((200, 50), seed=3).numpy())
    assert not np.array_equal(a, ops.signed_uniform_pairs((200, 50), seed=4).numpy())
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


def test_bspline_upsampling_interpolates_exactly():
    # Cubic B-splines reproduce linear functions: control values on a line
    # give the same line at every pixel, whatever the spacing.
    for step in (1, 3, 4):
        n = ops.control_points(20, step)
        ramp = (np.arange(n, dtype=np.float32) - 1) * step  # control q sits at pixel (q - 1) * step
        noise = np.broadcast_to(ramp[None, :, None, None], (1, n, n, 2)).astype(np.float32)
        field = ops.elastic_field(tf.constant(noise), 20, 20, step).numpy()
        field *= ops.bspline_rms(20, 20, step)  # undo the normalization
        np.testing.assert_allclose(field[0, :, 0, 0], np.arange(20), atol=1e-4)
        np.testing.assert_allclose(field[0, 5, :, 1], np.full(20, 5.0), atol=1e-4)


def test_erasing_erases_a_rectangle_only():
    x = np.full((4, 16, 16, 1), 255, np.uint8)
    out = ops.RandomErasing(probability=1.0, fill=0.0, seed=0)(x).numpy()[..., 0]
    for img in out:
        rows, cols = np.nonzero(img == 0)
        assert rows.size > 0
        box = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert (box == 0).all()


def test_seeded_randaugment_honours_seed():
    layer = ops.SeededRandAugment(value_range=(0, 255), factor=0.5, seed=0)
    x = tf.constant(make_arrays(4, 16, 16, 3)[0], tf.float32)

    def run(seed):
        t = layer.get_random_transformation(x, seed=ops.StatelessSeed(seed))
        return layer.transform_images(x, t).numpy(), t["layer_idxes"].numpy()

    (a, ia), (b, ib) = run([5, 6]), run([5, 6])
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a, b)
    assert ia.shape == (2, 4)  # num_ops x batch: ops are chosen per image


@pytest.mark.parametrize("interpolation", ops.INTERPOLATIONS)
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
    out = ops.warp_xla(
        x, ops.to_matrix(params), fill_mode=fill_mode, fill_value=5.0, interpolation=interpolation
    )
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-3)


def test_batch_fingerprint_is_exact_and_sees_every_pixel_and_the_order():
    x = make_arrays(6, 8, 8, 1)[0]
    f = ops.batch_fingerprint
    assert f(x).dtype == tf.int64 and int(f(x)) == int(f(x.copy()))
    assert int(tf.function(f, jit_compile=True)(x)) == int(f(x))  # same under XLA
    y = x.copy()
    y[5, 7, 7, 0] ^= 1  # one bit of the last pixel
    assert int(f(y)) != int(f(x))
    assert int(f(x[::-1])) != int(f(x))  # same images, other order
    xf = x.astype(np.float32) / 127.5 - 1.0
    assert int(f(xf)) != int(f(xf + 1e-7))


def test_with_philox_draws_the_same_numbers_inside_and_outside_xla():
    layer = ops.with_philox(keras.layers.RandomRotation(0.2))
    assert ops.with_philox(layer) is layer
    x = tf.zeros((16, 8, 8, 1))

    def angles():
        return layer.get_random_transformation(x, seed=ops.StatelessSeed([1, 2]))["angle"]

    eager = angles().numpy()
    np.testing.assert_allclose(tf.function(angles, jit_compile=True)().numpy(), eager, rtol=1e-6)
    assert np.abs(eager).max() <= 0.2 * 360 and len(np.unique(eager)) == 16


def test_spline_source_grid_equals_the_per_pixel_affine_map():
    b, h, w = 3, 20, 17
    layer = ops.ElasticDistortion(alpha=0.05)
    t = layer.get_random_transformation(tf.zeros((b, h, w, 1)), seed=ops.StatelessSeed([4, 2]))
    a = 0.4
    params = tf.tile([[np.cos(a), -np.sin(a), 3.0, np.sin(a) * 1.1, np.cos(a), -2.0, 0, 0]], [b, 1])
    m = ops.to_matrix(params)
    d = ops.elastic_field(t["noise"], h, w, t["step"]) * t["alpha"]
    want_y, want_x = ops.source_grid(m, h, w, d)
    got_y, got_x = ops.spline_source_grid(m, t, h, w)
    np.testing.assert_allclose(got_y.numpy(), want_y.numpy(), atol=1e-4)
    np.testing.assert_allclose(got_x.numpy(), want_x.numpy(), atol=1e-4)
    x = tf.constant(make_arrays(b, h, w, 1)[0], tf.float32)
    fast = ops.warp_xla(x, m, (t,), affine=True)
    np.testing.assert_allclose(fast.numpy(), ops.warp_xla(x, m, (t,)).numpy(), atol=0.05)


@pytest.mark.parametrize("channels,fill", [(1, 0), (3, 200)])
def test_quad_sampler_equals_the_gather_sampler(channels, fill):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 9, 7, channels), dtype=np.uint8)
    ys, xs = np.meshgrid(np.arange(9.0), np.arange(7.0), indexing="ij")
    # in-image, fractional, just outside and far outside (clamped into the padding)
    src_y = (ys * 1.7 - 4.3 + rng.normal(0, 2, (3, 9, 7))).astype(np.float32)
    src_x = (xs * 1.9 - 5.1 + rng.normal(0, 2, (3, 9, 7))).astype(np.float32)
    src_y[0, 0, 0], src_x[0, 0, 1] = -40.5, 55.25
    want = ops.sample_images(tf.constant(x, tf.float32), src_y, src_x, fill_value=fill)
    got = ops.sample_quads(ops.pack_quads(x, fill), src_y, src_x)
    assert got.shape == x.shape and got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-4)
    assert ops.uses_quads(tf.uint8, "constant", "bilinear")
    assert not ops.uses_quads(tf.float32, "constant", "bilinear")
    assert not ops.uses_quads(tf.uint8, "reflect", "bilinear")
