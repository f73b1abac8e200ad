"""Every private Keras / TensorFlow API that tfsynth relies on, in one place.

Each use is one small function with the reason it is needed, and
tests/test_compat.py checks each against the installed versions, so a
Keras or TensorFlow upgrade that removes or changes one fails there, with
the versions named, instead of deep inside an augmentation or a train step.
setup.cfg pins Keras to the minor versions those tests ran on.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

TESTED = "tested with TensorFlow 2.21 and Keras 3.15"


def versions() -> str:
    """The installed versions and the tested ones, for error messages.

    >>> "Keras" in versions()
    True
    """
    return f"TensorFlow {tf.__version__}, Keras {keras.__version__} ({TESTED})"


def draw_seed(seed) -> tf.Tensor:
    """Any Keras seed (an int, a `SeedGenerator` or a stand-in) as the seed tensor.

    Why: tfsynth's own stateless draws take the same seeds as
    `keras.random` functions, and Keras has no public function that turns
    one into the [2] tensor of TensorFlow's stateless ops
    (`keras.src.random.seed_generator.draw_seed`).

    >>> tuple(draw_seed(3).shape)
    (2,)
    """
    from keras.src.random.seed_generator import draw_seed as keras_draw_seed

    return keras_draw_seed(seed)


def keep_input_dtype(layer: keras.layers.Layer) -> keras.layers.Layer:
    """Lets `layer.__call__` pass its inputs through as they are: dtype, NumPy or tensor.

    Why: tfsynth's augmentation layers return the input's own dtype (uint8
    stays uint8, a float16 or float64 batch stays in its dtype). By default
    `Layer.__call__` converts inputs and autocasts floats to the layer's
    dtype unless `_convert_input_args` is off, and then refuses NumPy
    positional arguments unless `_allow_non_tensor_positional_args` is on;
    Keras' own preprocessing layers set the same two attributes.
    Returns the layer.
    """
    layer._convert_input_args = False
    layer._allow_non_tensor_positional_args = True
    return layer


def rand_augment_layer_names(layer: keras.layers.RandAugment) -> list[str]:
    """The attribute names of the sub-layers a Keras `RandAugment` chooses from.

    Why: `SeededRandAugment` picks among the same operations per image,
    and Keras keeps their list only in the private `_AUGMENT_LAYERS`.
    """
    return list(layer._AUGMENT_LAYERS)


def layer_seed_generator(layer: keras.layers.Layer) -> keras.random.SeedGenerator:
    """The seed generator a Keras preprocessing layer draws from when given no seed.

    Why: `SeededRandAugment` falls back to the generator Keras'
    `RandAugment` would use (`_get_seed_generator`, which picks one per
    backend), so an unseeded call behaves like Keras'.
    """
    return layer._get_seed_generator(layer.backend._backend)


class _RandomWithUniform:
    # A backend's `random` module with `uniform` replaced.
    def __init__(self, module, uniform):
        self._module = module
        self._uniform = uniform

    def __getattr__(self, name):
        return getattr(self._module, name)

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return self._uniform(shape, minval, maxval, seed, dtype)


class _BackendWithUniform:
    # Wraps a layer's `DynamicBackend`; everything but `random` passes through.
    def __init__(self, backend, uniform):
        self._inner = backend
        self._uniform = uniform

    def __getattr__(self, name):
        value = getattr(self._inner, name)
        return _RandomWithUniform(value, self._uniform) if name == "random" else value


def replace_layer_uniform(layer: keras.layers.Layer, uniform: Callable) -> keras.layers.Layer:
    """Makes a Keras image layer draw its uniforms with `uniform(shape, minval, maxval, seed, dtype)`.

    Why: Keras' image preprocessing layers draw their parameters with
    `self.backend.random.uniform` (an undocumented attribute, a
    `DynamicBackend`), which offers no way to choose the generator
    algorithm; tfsynth names Philox (see `tfsynth.augment.draws.with_philox`).
    Only the draws change, not the layer's math. Idempotent; returns the layer.
    """
    backend = getattr(layer, "backend", None)
    if backend is not None and not isinstance(backend, _BackendWithUniform):
        layer.backend = _BackendWithUniform(backend, uniform)
    return layer


def transformation_values(layer: keras.layers.Layer, transformation: dict, *keys: str) -> tuple:
    """The entries `keys` of a Keras layer's `get_random_transformation` dict.

    Why: the warp composes the matrices of RandomRotation,
    RandomTranslation, RandomZoom and RandomFlip from their drawn
    parameters, whose key names are not a documented interface. A
    missing key raises an error naming the layer and the versions.
    """
    missing = [k for k in keys if k not in transformation]
    if missing:
        raise RuntimeError(
            f"{type(layer).__name__}.get_random_transformation has no {missing} in "
            f"{versions()}: tfsynth's warp reads these keys; update tfsynth/_compat.py"
        )
    return tuple(transformation[k] for k in keys)


def maybe_merge_call(fn: Callable, strategy: tf.distribute.Strategy, *args):
    """Calls `fn(strategy, *args)` in a cross-replica context, under any strategy.

    Why: the EMA update assigns mirrored variables per device from inside
    a replica context; Keras' own optimizers do this through
    `tf.__internal__.distribute.interim.maybe_merge_call`, which has no
    public equivalent (it skips the merge when the strategy allows it).
    """
    return tf.__internal__.distribute.interim.maybe_merge_call(fn, strategy, *args)
