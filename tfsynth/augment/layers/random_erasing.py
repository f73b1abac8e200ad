"""`RandomErasing`: random erasing (Zhong et al., 2017), vectorized."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfsynth.augment.layers.random_image_layer import RandomImageLayer


@keras.saving.register_keras_serializable(package="tfsynth")
class RandomErasing(RandomImageLayer):
    """Random erasing (Zhong et al., 2017), vectorized.

    With probability `probability` per image, a rectangle covering a random
    fraction `area` of the image with aspect ratio in `aspect` is replaced
    by uniform noise in `value_range` (fill="noise") or by a constant.

    Args:
        probability: chance that an image is erased, in [0, 1]; 0 makes the
            layer the identity.
        area: (min, max) fraction of the image area to erase.
        aspect: (min, max) height/width ratio of the rectangle.
        fill: "noise" or a number in `value_range`.
        value_range: range of the float images.
        seed: seed of the layer's own generator (used by `call`).

    Example:

    >>> import numpy as np
    >>> layer = RandomErasing(probability=1.0, seed=0)
    >>> x = np.full((4, 16, 16, 1), 255, np.uint8)
    >>> y = layer(x).numpy()
    >>> y.shape, bool((y != 255).any(axis=(1, 2, 3)).all())
    ((4, 16, 16, 1), True)
    """

    def __init__(
        self,
        probability=0.5,
        area=(0.02, 0.25),
        aspect=(0.3, 3.3),
        fill="noise",
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        if not 0 <= probability <= 1:
            raise ValueError(f"RandomErasing: probability must be in [0, 1], got {probability}")
        if not (0 < area[0] <= area[1] <= 1) or not (0 < aspect[0] <= aspect[1]):
            raise ValueError(f"RandomErasing: bad area {area} or aspect {aspect}")
        if fill != "noise" and not isinstance(fill, (int, float)):
            raise ValueError(f"RandomErasing: fill must be 'noise' or a number, got {fill!r}")
        self.probability = float(probability)
        self.area = tuple(float(a) for a in area)
        self.aspect = tuple(float(a) for a in aspect)
        self.fill = fill

    def get_random_transformation(self, images, training=True, seed=None):
        if not training or self.probability == 0:
            return None
        seed = self.generator if seed is None else seed
        shape = tf.shape(images)
        b = shape[0]
        h, w = images.shape[1], images.shape[2]
        u = keras.random.uniform((b, 5), 0.0, 1.0, seed=seed)
        apply = u[:, 0] < self.probability
        area = (self.area[0] + (self.area[1] - self.area[0]) * u[:, 1]) * (h * w)
        log_lo, log_hi = math.log(self.aspect[0]), math.log(self.aspect[1])
        aspect = tf.exp(log_lo + (log_hi - log_lo) * u[:, 2])
        eh = tf.minimum(tf.sqrt(area * aspect), float(h))
        ew = tf.minimum(tf.sqrt(area / aspect), float(w))
        y0 = u[:, 3] * (h - eh)
        x0 = u[:, 4] * (w - ew)
        ys = tf.range(h, dtype=tf.float32)[None, :, None] + 0.5
        xs = tf.range(w, dtype=tf.float32)[None, None, :] + 0.5
        box = (
            (ys >= y0[:, None, None])
            & (ys < (y0 + eh)[:, None, None])
            & (xs >= x0[:, None, None])
            & (xs < (x0 + ew)[:, None, None])
        )
        mask = (box & apply[:, None, None])[..., None]
        if self.fill == "noise":
            lo, hi = self.value_range
            fill = keras.random.uniform(shape, lo, hi, seed=seed)
        else:
            fill = tf.fill(shape, tf.cast(self.fill, tf.float32))
        return {"mask": mask, "fill": fill}

    def transform_images(self, images, transformation, training=True):
        if not training or transformation is None:
            return images
        return tf.where(transformation["mask"], transformation["fill"], images)

    def get_config(self):
        return {
            **super().get_config(),
            "probability": self.probability,
            "area": list(self.area),
            "aspect": list(self.aspect),
            "fill": self.fill,
        }
