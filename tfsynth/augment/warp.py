"""Warps: the source coordinates of composed geometric ops, and one resampling.

- `geometric_matrix` turns the drawn parameters of Keras' RandomRotation,
  RandomTranslation, RandomZoom and RandomFlip into (B, 3, 3) matrices;
  a policy multiplies them, so any run of geometric ops is one warp;
- `warp_grid` gives every output pixel's source coordinates for the
  composed matrix and elastic fields (`spline_source_grid`: from the
  control points directly when the matrix is affine);
- `warp` / `warp_xla` resample once at those coordinates
  (`tfsynth.augment.resampling`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfsynth import _compat
from tfsynth.augment import resampling
from tfsynth.augment.elastic import bspline_rms, elastic_field, upsample


def identity_matrices(batch_size) -> tf.Tensor:
    """(B, 3, 3) identity transforms."""
    return tf.eye(3, batch_shape=[batch_size], dtype=tf.float32)


def to_matrix(params: tf.Tensor) -> tf.Tensor:
    """Keras/TF 8-parameter projective transforms (B, 8) -> (B, 3, 3)."""
    params = tf.cast(params, tf.float32)
    ones = tf.ones_like(params[:, :1])
    return tf.reshape(tf.concat([params, ones], axis=1), [-1, 3, 3])


def source_grid(
    matrices: tf.Tensor, height, width, displacement: tf.Tensor | None = None, affine=False
) -> tuple[tf.Tensor, tf.Tensor]:
    """Source coordinates (src_y, src_x), each (B, H, W), of output pixels.

    `matrices` (B, 3, 3) map output (x, y, 1) to input coordinates, the
    convention of Keras' affine transforms. `displacement` (B, H, W, 2) in
    pixels, (dy, dx), moves the output grid first: an elastic distortion
    applied after the affine part. `affine`: see `map_points`.
    """
    ys, xs = tf.meshgrid(
        tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
    )
    ys, xs = ys[None], xs[None]
    if displacement is not None:
        ys = ys + displacement[..., 0]
        xs = xs + displacement[..., 1]
    return map_points(matrices, ys, xs, affine)


def map_points(matrices: tf.Tensor, ys: tf.Tensor, xs: tf.Tensor, affine: bool = False):
    """Maps points (ys, xs), each (B, H, W) or broadcastable, by matrices (B, 3, 3).

    Returns (src_y, src_x). `affine=True` skips the projective division
    (the matrices' last row must be (0, 0, 1)).
    """
    m = tf.cast(matrices, tf.float32)[:, :, :, None, None]
    src_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]
    src_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    if affine:
        return src_y, src_x
    k = m[:, 2, 0] * xs + m[:, 2, 1] * ys + m[:, 2, 2]
    return src_y / k, src_x / k


def geometric_matrix(layer, transformation, height, width) -> tf.Tensor | None:
    """The (B, 3, 3) matrix of a Keras geometric layer's random transformation.

    Supports RandomRotation, RandomTranslation, RandomZoom and RandomFlip;
    returns None for other layers. The formulas are the ones those layers
    use for their own `affine_transform` call.
    """
    layers = keras.layers
    if isinstance(layer, layers.RandomRotation):
        (rotation,) = _compat.transformation_values(layer, transformation, "rotation_matrix")
        return to_matrix(rotation)
    if isinstance(layer, layers.RandomTranslation):
        (t,) = _compat.transformation_values(layer, transformation, "translations")
        t = tf.cast(t, tf.float32)  # (B, 2) = (dx, dy) pixels
        z, o = tf.zeros_like(t[:, :1]), tf.ones_like(t[:, :1])
        return to_matrix(tf.concat([o, z, -t[:, :1], z, o, -t[:, 1:], z, z], axis=1))
    if isinstance(layer, layers.RandomZoom):
        zx, zy = _compat.transformation_values(layer, transformation, "width_zoom", "height_zoom")
        zx, zy = tf.cast(zx, tf.float32), tf.cast(zy, tf.float32)
        ox = (tf.cast(width, tf.float32) - 1.0) / 2.0 * (1.0 - zx)
        oy = (tf.cast(height, tf.float32) - 1.0) / 2.0 * (1.0 - zy)
        z = tf.zeros_like(zx)
        return to_matrix(tf.concat([zx, z, ox, z, zy, oy, z, z], axis=1))
    if isinstance(layer, layers.RandomFlip):
        (f,) = _compat.transformation_values(layer, transformation, "flips")
        f = tf.reshape(tf.cast(f, tf.float32), [-1, 1])
        z, o = tf.zeros_like(f), tf.ones_like(f)
        hx = layer.mode in ("horizontal", "horizontal_and_vertical")
        vy = layer.mode in ("vertical", "horizontal_and_vertical")
        sx = o - 2.0 * f if hx else o
        tx = f * (tf.cast(width, tf.float32) - 1.0) if hx else z
        sy = o - 2.0 * f if vy else o
        ty = f * (tf.cast(height, tf.float32) - 1.0) if vy else z
        return to_matrix(tf.concat([sx, z, tx, z, sy, ty, z, z], axis=1))
    return None


def warp_grid(
    matrices: tf.Tensor, elastic: tuple | None, height: int, width: int, affine: bool = False
) -> tuple[tf.Tensor, tf.Tensor]:
    """Source coordinates (src_y, src_x), each (B, H, W), of a composed warp.

    `matrices` (B, 3, 3) and `elastic` as in `warp`. With `affine` and one
    elastic field the grid is interpolated from the control points
    (`spline_source_grid`); otherwise the fields are summed per pixel.
    """
    if affine and elastic and len(elastic) == 1:
        return spline_source_grid(matrices, elastic[0], height, width)
    displacement = None
    for t in elastic or ():
        d = elastic_field(t["noise"], height, width, t["step"]) * t["alpha"]
        displacement = d if displacement is None else displacement + d
    return source_grid(matrices, height, width, displacement, affine)


def warp(
    images: tf.Tensor,
    matrices: tf.Tensor,
    elastic: tuple | None = None,
    fill_mode: str = "constant",
    fill_value: float = 0.0,
    interpolation: str = "bilinear",
    output_dtype: str = "float32",
    affine: bool = False,
) -> tf.Tensor:
    """Warps images (B, H, W, C) by matrices (B, 3, 3) and elastic fields.

    One resampling for any composition of affine ops and elastic
    distortions (see `warp_grid` and `sample_images`). `elastic` is a
    tuple of ElasticDistortion transformations, whose fields are summed.
    `affine=True` promises that the matrices' last row is (0, 0, 1), as for
    every Keras geometric layer. Any input dtype is read as float; a uint8
    `output_dtype` rounds and clips to [0, 255]. Bilinear weights are
    convex, so the output stays in the input's value range.
    """
    h, w = images.shape[1], images.shape[2]
    src_y, src_x = warp_grid(matrices, elastic, h, w, affine)
    out = resampling.resample(
        images,
        src_y,
        src_x,
        fill_mode=fill_mode,
        fill_value=fill_value,
        interpolation=interpolation,
    )
    return resampling.cast_output(out, output_dtype)


def spline_source_grid(matrices: tf.Tensor, elastic: dict, height: int, width: int):
    """`source_grid` for affine matrices and one elastic field, from its control points.

    The elastic field is a cubic B-spline of its control points, and cubic
    B-splines reproduce linear functions, so mapping the displaced control
    points by the affine matrix and interpolating gives every pixel's source
    coordinates exactly. The per-pixel work is then one spline
    interpolation, instead of the interpolation plus an affine map.
    """
    noise, step = elastic["noise"], elastic["step"]
    scale = elastic["alpha"] / bspline_rms(height, width, step)
    # Control point j sits at pixel (j - 1) * step (see `elastic.upsample`).
    cy = (np.arange(noise.shape[1], dtype=np.float32) - 1.0) * step
    cx = (np.arange(noise.shape[2], dtype=np.float32) - 1.0) * step
    src_y, src_x = map_points(
        matrices,
        cy[None, :, None] + noise[..., 0] * scale,
        cx[None, None, :] + noise[..., 1] * scale,
        affine=True,
    )
    # Each coordinate on its own: no (..., 2) interleaving to split afterwards.
    return tuple(upsample(upsample(c, step, width, 2), step, height, 1) for c in (src_y, src_x))


# XLA fuses the casts, the coordinate arithmetic and the four gathers into
# one loop, faster on CPU than plain TF ops (bench/results/design_measurements.md).
warp_xla = tf.function(warp, jit_compile=True)
