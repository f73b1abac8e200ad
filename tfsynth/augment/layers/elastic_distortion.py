"""`ElasticDistortion`: random elastic distortion (Simard et al., 2003), vectorized."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfsynth.augment import draws, warp
from tfsynth.augment.elastic import control_points, elastic_step
from tfsynth.augment.layers.random_image_layer import RandomImageLayer
from tfsynth.augment.resampling import FILL_MODES, INTERPOLATIONS


@keras.saving.register_keras_serializable(package="tfsynth")
class ElasticDistortion(RandomImageLayer):
    """Random elastic distortion (Simard et al., 2003), vectorized.

    Each image gets a smooth random displacement field (see
    `elastic_field`: random control points about 1.7 `sigma` apart,
    interpolated by a cubic B-spline) scaled so that its expected RMS displacement is
    `alpha`; both are fractions of the larger image side, so the same
    setting suits 28x28 and 64x64 images. The image is then resampled
    bilinearly at the displaced positions.

    Args:
        alpha: expected RMS displacement as a fraction of the image side,
            >= 0; 0 makes the layer the identity.
        sigma: smoothness as a fraction of the image side, > 0: the field
            has the correlation length of Simard et al.'s noise smoothed
            by a Gaussian of this width (control points sqrt(3) * sigma
            apart, rounded to whole pixels; see `elastic_step`).
        fill_mode: "constant", "nearest", "reflect" or "wrap".
        fill_value: value outside the image for fill_mode="constant".
        interpolation: "bilinear" or "nearest".
        value_range: range of the float images (unused by the warp, kept
            for a uniform interface).
        seed: seed of the layer's own generator (used by `call`).

    Example:

    >>> import numpy as np
    >>> layer = ElasticDistortion(alpha=0.03, seed=0)
    >>> x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    >>> y = layer(x, training=True)
    >>> y.dtype.name, tuple(y.shape), bool((layer(x, training=False).numpy() == x).all())
    ('uint8', (4, 28, 28, 1), True)
    """

    def __init__(
        self,
        alpha=0.03,
        sigma=0.12,
        fill_mode="constant",
        fill_value=0.0,
        interpolation="bilinear",
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        super().__init__(value_range=value_range, seed=seed, **kwargs)
        if alpha < 0 or sigma <= 0:
            raise ValueError(
                f"ElasticDistortion: need alpha >= 0 and sigma > 0, got {alpha}, {sigma}"
            )
        if fill_mode not in FILL_MODES or interpolation not in INTERPOLATIONS:
            raise ValueError(f"ElasticDistortion: bad fill_mode {fill_mode!r} or interpolation")
        self.alpha = float(alpha)
        self.sigma = float(sigma)
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        self.interpolation = interpolation

    def get_random_transformation(self, images, training=True, seed=None):
        if not training or self.alpha == 0:
            return None
        seed = self.generator if seed is None else seed
        h, w = images.shape[1], images.shape[2]
        step = elastic_step(self.sigma, h, w)
        shape = (tf.shape(images)[0], control_points(h, step), control_points(w, step))
        # The field itself is computed inside the (XLA-compiled) warp.
        return {
            "noise": draws.uniform((*shape, 2), -1.0, 1.0, seed),  # (..., 2): (dy, dx)
            "step": step,
            "alpha": self.alpha * max(h, w),
        }

    def transform_images(self, images, transformation, training=True):
        if not training or transformation is None:
            return images
        return warp.warp_xla(
            images,
            warp.identity_matrices(tf.shape(images)[0]),
            (transformation,),
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            interpolation=self.interpolation,
            affine=True,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "sigma": self.sigma,
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "interpolation": self.interpolation,
        }
