"""Stateless random draws for augmentation: seeds, uniforms, Philox everywhere.

Every draw is a pure function of an explicit seed, so augmentation is
reproducible under a parallel `tf.data.map` and inside XLA.

- `fold_seed` derives independent seeds; `StatelessSeed` hands Keras
  layers seeds derived from a tensor; `batch_fingerprint` seeds a batch
  from its pixels when no seed is given.
- `uniform` is tfsynth's own draw, and `with_philox` makes Keras layers
  draw with the same (Philox) generator.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfsynth import _compat


def fold_seed(seed: tf.Tensor, key) -> tf.Tensor:
    """Derives an independent stateless seed (int64 [2]) from `seed` and `key`.

    The algorithm is named: with the default ("auto_select") XLA and the
    TensorFlow kernels pick different generators, so the same seed would
    give different augmentations inside and outside a compiled function.
    """
    seed = tf.cast(seed, tf.int64)
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(key, tf.int64), alg="philox")


class StatelessSeed(keras.random.SeedGenerator):
    """A `SeedGenerator` stand-in that hands out seeds derived from a tensor.

    Keras random functions accept an int or a `SeedGenerator`; a stateful
    generator advances a variable, and under `tf.data.map` with parallel
    calls the order of those updates is not deterministic. This object has
    no variable: its n-th `next()` returns `seed + [0, n]` (the way Keras'
    own `SeedGenerator` advances), so the values depend only on the seed
    tensor and on the (deterministic) order in which a layer draws them
    while it is traced. Plain addition, not `fold_seed`: a fold-in is a
    random-number op per draw (what that saves per `digits` batch is in
    bench/results/design_measurements.md).

    Example:

    >>> import keras, tensorflow as tf
    >>> layer = keras.layers.RandomRotation(0.1)
    >>> x = tf.zeros((2, 8, 8, 1))
    >>> a = layer.get_random_transformation(x, seed=StatelessSeed([1, 2]))
    >>> b = layer.get_random_transformation(x, seed=StatelessSeed([1, 2]))
    >>> bool(tf.reduce_all(a["angle"] == b["angle"]))
    True
    """

    def __init__(self, seed):  # noqa: D107 - no super().__init__: that would create a variable
        self._seed = tf.cast(seed, tf.int64)
        self._count = 0
        self.name = "stateless_seed"

    def next(self, ordered=True):
        self._count += 1
        return self._seed + tf.constant([0, self._count], tf.int64)

    def __bool__(self):  # layers write `seed or self.generator`
        return True


def batch_fingerprint(images: tf.Tensor) -> tf.Tensor:
    """An int64 fingerprint of a batch's pixels (any dtype), for seeding.

    Two sums of the pixel bits weighted by different pseudo-random odd
    multipliers, in wrapping 32-bit integer arithmetic: exact and
    independent of summation order, so it is the same on every device and
    under XLA (where it fuses into the augmentation kernel; `tf.fingerprint`
    of a pixel subsample cost a separate TF op chain per batch). Changing
    any pixel, or the order of the images, changes it.

    >>> import numpy as np
    >>> a = np.zeros((2, 4, 4, 1), np.uint8)
    >>> b = a.copy(); b[1, 2, 3, 0] = 1
    >>> int(batch_fingerprint(a)) != int(batch_fingerprint(b))
    True
    """
    x = tf.convert_to_tensor(images)
    if x.dtype.is_floating:
        bits = tf.bitcast(tf.cast(x, tf.float32), tf.int32)
    else:
        bits = tf.cast(x, tf.int32)
    bits = tf.reshape(bits, [-1])
    i = tf.range(tf.size(bits), dtype=tf.int32)
    w1 = tf.bitwise.bitwise_or(i * -1640531535 + 0x2545F491, 1)
    w2 = tf.bitwise.bitwise_or(i * -2048144777 + 0x3C6EF372, 1)
    hi = tf.cast(tf.reduce_sum(bits * w1), tf.int64)
    lo = tf.cast(tf.bitcast(tf.reduce_sum(bits * w2), tf.uint32), tf.int64)
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(hi, 32), lo)


def _seed_tensor(seed) -> tf.Tensor:
    # A Keras seed (int, SeedGenerator, StatelessSeed) as the int64 [2] of TF's stateless ops.
    return tf.cast(_compat.draw_seed(seed), tf.int64)


def uniform(shape, minval=0.0, maxval=1.0, seed=None, dtype="float32") -> tf.Tensor:
    """Stateless uniform numbers with the Philox generator, cheap inside XLA too.

    `seed` is anything Keras random functions accept (an int, a
    `SeedGenerator`, a `StatelessSeed`). The algorithm is named because
    XLA's default ("auto_select") generator is much slower on CPU for the
    numbers of an elastic field (bench/results/design_measurements.md),
    and because XLA and TensorFlow would otherwise pick different ones.
    """
    seed = _seed_tensor(seed)
    dtype = tf.as_dtype(dtype or "float32")
    minval, maxval = tf.cast(minval, dtype), tf.cast(maxval, dtype)
    return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype, alg="philox")


def with_philox(layer: keras.layers.Layer) -> keras.layers.Layer:
    """Makes a Keras preprocessing layer draw its random parameters with Philox.

    Keras' image layers call `self.backend.random.uniform`, which uses
    TensorFlow's default "auto_select" algorithm, which is slower under
    XLA on CPU and differs between XLA and TensorFlow kernels; with Philox
    the policy draws the same numbers everywhere (the saving is in
    bench/results/design_measurements.md). The layer's math and arguments
    are untouched. Returns the layer.
    """
    return _compat.replace_layer_uniform(layer, uniform)
