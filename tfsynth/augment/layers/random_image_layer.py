"""`RandomImageLayer`: the base of tfsynth's own augmentation layers."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfsynth import _compat


class RandomImageLayer(keras.layers.Layer):
    """Base for tfsynth's augmentation layers.

    Subclasses implement `get_random_transformation(images, training, seed)`
    and `transform_images(images, transformation, training)` like Keras 3's
    image preprocessing layers, on float images in `value_range`. `call`
    keeps the input dtype (uint8 stays uint8, rounded and clipped) and is
    the identity when `training` is false.
    """

    def __init__(self, value_range=(0, 255), seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.value_range = tuple(float(v) for v in value_range)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        # Inputs keep their dtype (Keras would autocast floats) and may be NumPy.
        _compat.keep_input_dtype(self)

    def call(self, images, training=True):
        images = tf.convert_to_tensor(images)
        if not training:
            return images
        x = tf.cast(images, tf.float32)
        t = self.get_random_transformation(x, training=True, seed=self.generator)
        out = self.transform_images(x, t, training=True)
        if images.dtype == tf.uint8:
            return tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8)
        return tf.cast(out, images.dtype)

    def transform_labels(self, labels, transformation, training=True):
        return labels

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "value_range": list(self.value_range), "seed": self.seed}
