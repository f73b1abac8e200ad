"""`SeededRandAugment`: Keras' RandAugment, seeded and per image."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfsynth import _compat


@keras.saving.register_keras_serializable(package="tfsynth")
class SeededRandAugment(keras.layers.RandAugment):
    """Keras `RandAugment` that honours an explicit seed and varies per image.

    Keras 3.15's RandAugment ignores the `seed` passed to
    `get_random_transformation` (it always advances its own generator) and
    draws one list of operations for the whole batch. This subclass draws
    from the given seed and picks `num_ops` operations for every image.

    Example:

    >>> import numpy as np
    >>> layer = SeededRandAugment(value_range=(0, 255), factor=0.5, seed=0)
    >>> x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    >>> tuple(layer(x).shape)
    (4, 16, 16, 3)
    """

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        seed = _compat.layer_seed_generator(self) if seed is None else seed
        images = data["images"] if isinstance(data, dict) else data
        batch = tf.shape(images)[0]
        names = _compat.rand_augment_layer_names(self)
        layer_idxes = keras.random.randint((self.num_ops, batch), 0, len(names), seed=seed)
        transforms = {
            name: getattr(self, name).get_random_transformation(data, training=True, seed=seed)
            for name in names
        }
        return {"transforms": transforms, "layer_idxes": layer_idxes}

    def transform_images(self, images, transformation, training=True):
        images = tf.cast(images, self.compute_dtype)
        if not training or transformation is None:
            return images
        idxes = transformation["layer_idxes"]
        for i in range(self.num_ops):
            for idx, (name, value) in enumerate(transformation["transforms"].items()):
                out = getattr(self, name).transform_images(images, value)
                pick = tf.reshape(idxes[i] == idx, [-1, 1, 1, 1])
                images = tf.where(pick, tf.cast(out, images.dtype), images)
        return images
