"""Resampling a batch of images at given source coordinates.

- `sample_images` is the general bilinear / nearest sampler for float
  images with every fill mode, written with gathers so that XLA compiles
  and fuses it;
- `pack_quads` + `sample_quads` are the fast path for uint8 images with a
  constant fill: each pixel's 2x2 neighbourhood packed into one int32, so
  a bilinear read is one gather instead of four;
- `resample` chooses between them, `cast_output` writes the result's dtype.

Where the source coordinates come from is `tfsynth.augment.warp`'s business.
"""

from __future__ import annotations

import tensorflow as tf

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")


def _reflect(i: tf.Tensor, n) -> tf.Tensor:
    # "reflect" as in Keras/TF: (d c b a | a b c d | d c b a).
    m = tf.math.floormod(i, 2 * n)
    return tf.where(m >= n, 2 * n - 1 - m, m)


def sample_images(
    images: tf.Tensor,
    src_y: tf.Tensor,
    src_x: tf.Tensor,
    *,
    fill_mode: str = "constant",
    fill_value: float = 0.0,
    interpolation: str = "bilinear",
) -> tf.Tensor:
    """Resamples float images (B, H, W, C) at source coordinates (B, H, W).

    Output pixel (b, y, x) is read from input position (src_y, src_x) of
    image b, with the same conventions as `keras.ops.image.affine_transform`
    (integer coordinates are pixel centres; `fill_mode` decides what lies
    outside the image; "wrap" is exactly periodic, like `np.roll`, where
    TensorFlow's kernel leaves a seam at the border). Written with gathers rather than
    ImageProjectiveTransform so that XLA can compile and fuse it.
    """
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    c = images.shape[-1]
    flat = tf.reshape(images, [-1, c])
    base = tf.reshape(tf.range(b) * h * w, [-1, 1, 1])

    def read(yi, xi):
        if fill_mode == "constant":
            valid = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        if fill_mode == "reflect":
            yi, xi = _reflect(yi, h), _reflect(xi, w)
        elif fill_mode == "wrap":
            yi, xi = tf.math.floormod(yi, h), tf.math.floormod(xi, w)
        yc = tf.clip_by_value(yi, 0, h - 1)
        xc = tf.clip_by_value(xi, 0, w - 1)
        v = tf.gather(flat, base + yc * w + xc)
        if fill_mode == "constant":
            v = tf.where(valid[..., None], v, tf.cast(fill_value, v.dtype))
        return v

    if interpolation == "nearest":
        # Round half away from zero, as the Keras/TF kernel does.
        yi = tf.cast(tf.floor(src_y + 0.5), tf.int32)
        xi = tf.cast(tf.floor(src_x + 0.5), tf.int32)
        return read(yi, xi)

    def corners(y0, x0):
        return read(y0, x0), read(y0, x0 + 1), read(y0 + 1, x0), read(y0 + 1, x0 + 1)

    return _bilinear(src_y, src_x, corners)


def _bilinear(src_y: tf.Tensor, src_x: tf.Tensor, corners) -> tf.Tensor:
    # Bilinear interpolation at (src_y, src_x); `corners(y0, x0)` returns the
    # values (B, H, W, C) at (y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)
    # for the integer floors y0, x0. Shared by both samplers.
    y0f, x0f = tf.floor(src_y), tf.floor(src_x)
    wy = (src_y - y0f)[..., None]
    wx = (src_x - x0f)[..., None]
    v00, v01, v10, v11 = corners(tf.cast(y0f, tf.int32), tf.cast(x0f, tf.int32))
    top = v00 * (1.0 - wx) + v01 * wx
    bottom = v10 * (1.0 - wx) + v11 * wx
    return top * (1.0 - wy) + bottom * wy


# Source rows and columns -QUAD_PAD .. H + QUAD_PAD - 1 exist in the packed
# quads; clamping a corner into that band reads only fill pixels.
QUAD_PAD = 2


def uses_quads(dtype, fill_mode: str, interpolation: str) -> bool:
    """Whether `pack_quads` + `sample_quads` can resample these images.

    They cover uint8 images with a constant fill and bilinear
    interpolation (the `digits` preset and any `fill:constant` policy on
    the uint8 batches of `to_tf_dataset`); `sample_images` does the rest.
    """
    return (
        tf.as_dtype(dtype) == tf.uint8 and fill_mode == "constant" and interpolation == "bilinear"
    )


def pack_quads(images: tf.Tensor, fill_value=0) -> tf.Tensor:
    """uint8 images (B, H, W, C) -> int32 2x2 neighbourhoods for `sample_quads`.

    The images are padded by `QUAD_PAD` pixels of `fill_value` on every
    side; element (b, i, j, c) of the result, shape (B, H + 2P, W + 2P, C),
    holds the padded pixels (i, j), (i, j + 1), (i + 1, j) and (i + 1, j + 1)
    in its bytes 0-3. A bilinear read is then one gather instead of four.
    Packing costs one pass over the batch; the gain only shows when the
    result is materialized, i.e. computed by a separate XLA computation
    from the sampler (inside one computation XLA fuses the packing into
    the gather and redoes it for every output pixel).

    >>> import numpy as np
    >>> q = pack_quads(np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)).numpy()
    >>> [int(q[0, 2, 2, 0]) >> (8 * k) & 255 for k in range(4)]
    [0, 1, 2, 3]
    """
    x = tf.convert_to_tensor(images)
    p = QUAD_PAD
    fill = tf.cast(fill_value, x.dtype)
    x = tf.cast(tf.pad(x, [[0, 0], [p, p + 1], [p, p + 1], [0, 0]], constant_values=fill), tf.int32)
    shift = tf.bitwise.left_shift
    return (
        x[:, :-1, :-1]
        | shift(x[:, :-1, 1:], 8)
        | shift(x[:, 1:, :-1], 16)
        | shift(x[:, 1:, 1:], 24)
    )


def sample_quads(quads: tf.Tensor, src_y: tf.Tensor, src_x: tf.Tensor) -> tf.Tensor:
    """Bilinear resampling (B, H, W, C) float32 from `pack_quads` output.

    The same result as `sample_images(images, src_y, src_x,
    fill_mode="constant", fill_value=fill)` for the packed uint8 images
    (up to float rounding): a corner outside the image reads the fill, and
    a position farther out than `QUAD_PAD` is clamped into the padding,
    where all four corners are fill. One int32 gather per pixel instead of
    four byte gathers: `bench/augment_kernel.py` times both.
    """
    shape = tf.shape(quads)
    b, hq, wq = shape[0], quads.shape[1], quads.shape[2]
    c = quads.shape[-1]
    h, w = hq - 2 * QUAD_PAD, wq - 2 * QUAD_PAD

    def corners(y0, x0):
        y0 = tf.clip_by_value(y0, -QUAD_PAD, h) + QUAD_PAD
        x0 = tf.clip_by_value(x0, -QUAD_PAD, w) + QUAD_PAD
        rows = tf.reshape(tf.range(b) * (hq * wq), [-1, 1, 1]) + y0 * wq + x0
        v = tf.gather(tf.reshape(quads, [-1, c]), rows)
        return tuple(
            tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(v, 8 * k), 255), tf.float32)
            for k in range(4)
        )

    return _bilinear(src_y, src_x, corners)


def resample(
    source: tf.Tensor,
    src_y: tf.Tensor,
    src_x: tf.Tensor,
    *,
    fill_mode: str = "constant",
    fill_value: float = 0.0,
    interpolation: str = "bilinear",
    packed: bool = False,
) -> tf.Tensor:
    """float32 (B, H, W, C) resampled at (src_y, src_x).

    `source` is the images (any dtype, read as float; `sample_images`), or
    with `packed=True` their `pack_quads` output (`sample_quads`, which
    needs `uses_quads`).
    """
    if packed:
        return sample_quads(source, src_y, src_x)
    return sample_images(
        tf.cast(source, tf.float32),
        src_y,
        src_x,
        fill_mode=fill_mode,
        fill_value=fill_value,
        interpolation=interpolation,
    )


def cast_output(images: tf.Tensor, output_dtype: str) -> tf.Tensor:
    """Float resampler output -> `output_dtype`; uint8 is rounded and clipped to [0, 255]."""
    if output_dtype == "uint8":
        return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8)
    return tf.cast(images, output_dtype)
