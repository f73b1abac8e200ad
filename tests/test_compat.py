"""One test per private Keras/TF API in tfsynth/_compat.py.

Each test exercises the private behaviour tfsynth relies on, and a failure
says which use broke and under which TensorFlow / Keras versions, so an
upgrade points at the function in _compat.py to fix.
"""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsynth import _compat
from tfsynth.augment import warp
from tfsynth.augment.draws import StatelessSeed


@contextlib.contextmanager
def loud(use: str):
    try:
        yield
    except Exception as e:  # any break of the private API, reported with the versions
        pytest.fail(
            f"_compat.{use} no longer works with {_compat.versions()}: {type(e).__name__}: {e}",
            pytrace=True,
        )


class _Echo(keras.layers.Layer):
    def call(self, x):
        return x


def test_draw_seed_accepts_ints_generators_and_stand_ins():
    with loud("draw_seed"):
        np.testing.assert_array_equal(_compat.draw_seed(7).numpy(), [7, 0])
        assert tuple(_compat.draw_seed(keras.random.SeedGenerator(1)).shape) == (2,)
        seed = _compat.draw_seed(StatelessSeed([3, 4]))  # calls its next(): [3, 4 + 1]
        np.testing.assert_array_equal(seed.numpy(), [3, 5])


def test_keep_input_dtype_passes_inputs_through_untouched():
    x = np.linspace(0, 1, 4).reshape(1, 2, 2, 1)  # float64, NumPy
    with loud("keep_input_dtype"):
        assert _Echo(dtype="float32")(x).dtype == tf.float32  # Keras autocasts floats
        out = _compat.keep_input_dtype(_Echo(dtype="float32"))(x)  # NumPy, positional
        assert out.dtype == np.float64
        np.testing.assert_array_equal(np.asarray(out), x)


def test_rand_augment_layer_names_are_its_sub_layers():
    layer = keras.layers.RandAugment(value_range=(0, 255))
    with loud("rand_augment_layer_names"):
        names = _compat.rand_augment_layer_names(layer)
        assert len(names) >= 5
        x = tf.zeros((2, 8, 8, 3))
        for name in names:
            sub = getattr(layer, name)
            sub.get_random_transformation(x, training=True, seed=StatelessSeed([0, 1]))


def test_layer_seed_generator_is_the_layers_own_generator():
    layer = keras.layers.RandAugment(value_range=(0, 255), seed=3)
    with loud("layer_seed_generator"):
        generator = _compat.layer_seed_generator(layer)
        assert isinstance(generator, keras.random.SeedGenerator)
        assert generator is layer.generator


def test_replace_layer_uniform_reaches_keras_image_layers():
    calls = []

    def half(shape, minval=0.0, maxval=1.0, seed=None, dtype=None):
        calls.append(shape)
        return tf.fill(shape, tf.cast((minval + maxval) / 2 + 0.25 * (maxval - minval), "float32"))

    layer = keras.layers.RandomRotation(0.25)  # angles in [-90, 90] degrees
    with loud("replace_layer_uniform"):
        assert _compat.replace_layer_uniform(layer, half) is layer
        assert _compat.replace_layer_uniform(layer, half) is layer  # idempotent
        t = layer.get_random_transformation(tf.zeros((3, 8, 8, 1)), seed=StatelessSeed([0, 1]))
        assert calls, "RandomRotation no longer draws through self.backend.random.uniform"
        # the drawn angle is 3/4 of the way up its range: 45 degrees
        np.testing.assert_allclose(np.asarray(t["angle"]).ravel(), [45.0] * 3, atol=1e-4)


@pytest.mark.parametrize(
    ("layer", "keys"),
    [
        (keras.layers.RandomRotation(0.1), ("rotation_matrix",)),
        (keras.layers.RandomTranslation(0.2, 0.1), ("translations",)),
        (keras.layers.RandomZoom((-0.2, 0.3)), ("width_zoom", "height_zoom")),
        (keras.layers.RandomFlip("horizontal_and_vertical"), ("flips",)),
    ],
    ids=["rotation", "translation", "zoom", "flip"],
)
def test_transformation_values_give_the_layers_own_warp(layer, keys):
    x = tf.random.stateless_uniform((4, 12, 10, 1), [0, 1], 0.0, 255.0)
    t = layer.get_random_transformation(x, training=True, seed=StatelessSeed([2, 3]))
    with loud("transformation_values"):
        assert len(_compat.transformation_values(layer, t, *keys)) == len(keys)
        # the matrix tfsynth builds from them warps as the layer itself does
        m = warp.geometric_matrix(layer, t, 12, 10)
        ours = warp.warp_xla(x, m, fill_mode=getattr(layer, "fill_mode", "constant"))
        np.testing.assert_allclose(ours.numpy(), layer.transform_images(x, t).numpy(), atol=0.05)
    with pytest.raises(RuntimeError, match="Keras"):
        _compat.transformation_values(layer, {}, *keys)


def test_maybe_merge_call_updates_mirrored_variables_from_a_replica():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        v = tf.Variable(1.0)

    def update(strategy, var, value):
        strategy.extended.update(var, lambda a, b: a.assign(a + b), args=(value,))

    @tf.function
    def step():
        strategy.run(lambda: _compat.maybe_merge_call(update, tf.distribute.get_strategy(), v, 2.0))

    with loud("maybe_merge_call"):
        step()
        assert float(v.numpy()) == 3.0
