"""Batched image operations and the augmentation layers Keras lacks.

Everything here is vectorized over a batch, uses only stateless random ops
driven by an explicit seed, and is built from ops that XLA can compile, so
an augmentation policy runs as one fused kernel inside `tf.data`.

- `StatelessSeed` lets Keras preprocessing layers draw their random
  parameters from a seed *tensor* instead of their stateful generator, which
  is what keeps augmentation reproducible under a parallel `tf.data.map`.
- `sample_images` is the one bilinear sampler: the policy warps a batch
  once for all of its geometric ops (rotation, translation, zoom, flip and
  elastic distortion composed), and `ElasticDistortion` uses it on its own.
- `ElasticDistortion` and `RandomErasing` are Keras layers with the same
  `get_random_transformation` / `transform_images` interface as Keras 3's
  image preprocessing layers.
- `SeededRandAugment` is Keras' `RandAugment` with two fixes: it honours
  the seed it is given, and it picks operations per image, not per batch.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")


# -- seeds --------------------------------------------------------------------


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
    random-number op, and replacing the six fold-ins of a `digits` batch
    saved 0.2-0.45 ms per batch under XLA on CPU (one-off measurement).

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
        self.backend = keras.src.backend

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


# -- geometry -----------------------------------------------------------------


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
        return to_matrix(transformation["rotation_matrix"])
    if isinstance(layer, layers.RandomTranslation):
        t = tf.cast(transformation["translations"], tf.float32)  # (B, 2) = (dx, dy) pixels
        z, o = tf.zeros_like(t[:, :1]), tf.ones_like(t[:, :1])
        return to_matrix(tf.concat([o, z, -t[:, :1], z, o, -t[:, 1:], z, z], axis=1))
    if isinstance(layer, layers.RandomZoom):
        zx = tf.cast(transformation["width_zoom"], tf.float32)
        zy = tf.cast(transformation["height_zoom"], tf.float32)
        ox = (tf.cast(width, tf.float32) - 1.0) / 2.0 * (1.0 - zx)
        oy = (tf.cast(height, tf.float32) - 1.0) / 2.0 * (1.0 - zy)
        z = tf.zeros_like(zx)
        return to_matrix(tf.concat([zx, z, ox, z, zy, oy, z, z], axis=1))
    if isinstance(layer, layers.RandomFlip):
        f = tf.reshape(tf.cast(transformation["flips"], tf.float32), [-1, 1])
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


def cast_output(images: tf.Tensor, output_dtype: str) -> tf.Tensor:
    """Float resampler output -> `output_dtype`; uint8 is rounded and clipped to [0, 255]."""
    if output_dtype == "uint8":
        return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8)
    return tf.cast(images, output_dtype)


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
    out = resample(
        images,
        src_y,
        src_x,
        fill_mode=fill_mode,
        fill_value=fill_value,
        interpolation=interpolation,
    )
    return cast_output(out, output_dtype)


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
    # Control point j sits at pixel (j - 1) * step (see `_upsample`).
    cy = (np.arange(noise.shape[1], dtype=np.float32) - 1.0) * step
    cx = (np.arange(noise.shape[2], dtype=np.float32) - 1.0) * step
    src_y, src_x = map_points(
        matrices,
        cy[None, :, None] + noise[..., 0] * scale,
        cx[None, None, :] + noise[..., 1] * scale,
        affine=True,
    )
    # Each coordinate on its own: no (..., 2) interleaving to split afterwards.
    return tuple(_upsample(_upsample(c, step, width, 2), step, height, 1) for c in (src_y, src_x))


# XLA fuses the casts, the coordinate arithmetic and the four gathers into
# one loop, about 5x faster on CPU than plain TF ops.
warp_xla = tf.function(warp, jit_compile=True)


def _seed_tensor(seed) -> tf.Tensor:
    # A Keras seed (int, SeedGenerator, StatelessSeed) as the int64 [2] of TF's stateless ops.
    from keras.src.random.seed_generator import draw_seed

    return tf.cast(draw_seed(seed), tf.int64)


def uniform(shape, minval=0.0, maxval=1.0, seed=None, dtype="float32") -> tf.Tensor:
    """Stateless uniform numbers with the Philox generator, cheap inside XLA too.

    `seed` is anything Keras random functions accept (an int, a
    `SeedGenerator`, a `StatelessSeed`). The algorithm is named because
    XLA's default ("auto_select") generator was about 40x slower on CPU
    for the ~90k numbers of an elastic field (22.8 ms vs 0.58 ms per
    batch of 256 in a jit-compiled function, a one-off measurement).
    """
    seed = _seed_tensor(seed)
    dtype = tf.as_dtype(dtype or "float32")
    minval, maxval = tf.cast(minval, dtype), tf.cast(maxval, dtype)
    return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype, alg="philox")


def signed_uniform_pairs(shape, seed=None) -> tf.Tensor:
    """Stateless uniform numbers in (-1, 1), shape `(*shape, 2)`, two per 32 random bits.

    The elastic field's control-point noise. Each Philox word gives two
    16-bit values, half the generator work of `uniform` for the same count
    (`bench/augment_kernel.py` times the draws); 16 bits resolve the noise
    to 2**-15, a displacement far below a thousandth of a pixel at any
    sensible strength. Value k in [0, 65535] maps to (k + 0.5) / 32768 - 1,
    so the set is symmetric about 0 with variance 1/3 (to 1e-9), like a
    continuous uniform on (-1, 1).

    >>> x = signed_uniform_pairs((1000,), seed=0).numpy()
    >>> x.shape, bool(abs(x).max() < 1), round(float(x.var()), 1)
    ((1000, 2), True, 0.3)
    """
    bits = tf.random.stateless_uniform(
        shape, _seed_tensor(seed), minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    )
    low = tf.bitwise.bitwise_and(bits, tf.constant(0xFFFF, tf.uint32))
    high = tf.bitwise.right_shift(bits, tf.constant(16, tf.uint32))
    halves = tf.cast(tf.stack([low, high], axis=-1), tf.float32)
    return halves * (1.0 / 32768) + (0.5 / 32768 - 1.0)


class _PhiloxRandom:
    # The backend's `random` module, with `uniform` replaced by `uniform` above.
    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return uniform(shape, minval, maxval, seed, dtype)


class _PhiloxBackend:
    # Wraps a layer's `DynamicBackend`; everything but `random` passes through.
    def __init__(self, backend):
        self._inner = backend

    def __getattr__(self, name):
        value = getattr(self._inner, name)
        return _PhiloxRandom(value) if name == "random" else value


def with_philox(layer: keras.layers.Layer) -> keras.layers.Layer:
    """Makes a Keras preprocessing layer draw its random parameters with Philox.

    Keras' image layers call `self.backend.random.uniform`, which uses
    TensorFlow's default "auto_select" algorithm; compiled by XLA on CPU,
    switching the `digits` draws to Philox cut the CPU time of one policy
    call by ~12% (1.82 -> 1.60 ms, one-off measurement on one core). The
    layer's math and arguments are untouched. Returns the layer.
    """
    backend = getattr(layer, "backend", None)  # tfsynth's own layers already use `uniform`
    if backend is not None and not isinstance(backend, _PhiloxBackend):
        layer.backend = _PhiloxBackend(backend)
    return layer


def bspline_taps(step: int) -> np.ndarray:
    """Cubic B-spline weights (step, 4): row r weighs control points q-1..q+2 at offset r/step."""
    t = np.arange(step, dtype=np.float64) / step
    return (
        np.stack(
            [(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3], axis=1
        )
        / 6.0
    )


def control_points(size: int, step: int) -> int:
    """Number of B-spline control points that cover `size` pixels at spacing `step`."""
    return -(-size // step) + 3


def _upsample(values: tf.Tensor, step: int, size: int, axis: int) -> tf.Tensor:
    # out[step * q + r] = sum_k taps[r, k] * values[q + k]: `step` dense
    # weighted sums of shifted slices, interleaved. Static slices fuse in
    # XLA; per call on CPU an einsum with the tap matrix was ~2x and a
    # constant-index gather ~6x slower (one-off measurement, 256x28x28).
    taps = bspline_taps(step)
    q = -(-size // step)
    rank = values.shape.rank

    def shifted(k):
        index = [slice(None)] * rank
        index[axis] = slice(k, k + q)
        return values[tuple(index)]

    slices = [shifted(k) for k in range(4)]
    phases = [sum(float(taps[r, k]) * slices[k] for k in range(4)) for r in range(step)]
    out = tf.stack(phases, axis=axis + 1)  # (..., q, step, ...)
    shape = [-1 if d is None else d for d in out.shape.as_list()]
    out = tf.reshape(out, shape[:axis] + [q * step] + shape[axis + 2 :])
    index = [slice(None)] * rank
    index[axis] = slice(0, size)
    return out[tuple(index)]


def elastic_field(noise: tf.Tensor, height: int, width: int, step: int) -> tf.Tensor:
    """A smooth random displacement field (B, H, W, 2) with unit expected RMS.

    `noise` (B, control_points(H, step), control_points(W, step), 2) holds
    uniform [-1, 1] displacements of control points `step` pixels apart;
    cubic B-spline interpolation spreads them to every pixel (the
    free-form deformation used by elastic augmentation in medical imaging,
    e.g. TorchIO's RandomElasticDeformation). It is smooth like Simard et
    al.'s Gaussian-filtered per-pixel noise with far fewer random numbers
    (8x8 control points instead of 28x28 pixels for `digits`) and without
    a convolution. The field is divided by its expected RMS
    (known from the spline weights), so `alpha * field` has RMS `alpha` on
    average; the exact value varies from image to image, as in Simard et al.
    """
    field = _upsample(_upsample(noise, step, width, 2), step, height, 1)
    return field / bspline_rms(height, width, step)


def bspline_rms(height: int, width: int, step: int) -> float:
    """Expected RMS of `elastic_field` before scaling, for uniform [-1, 1] noise.

    Each pixel is a weighted sum of independent values of variance 1/3, so
    its variance is (1/3) * sum(wy^2) * sum(wx^2); the weights repeat with
    period `step`, and the mean over the image factorizes over the axes.
    """
    per_phase = np.square(bspline_taps(step)).sum(axis=1)

    def mean_over(size):
        return np.resize(per_phase, size).mean()

    return float(np.sqrt(mean_over(height) * mean_over(width) / 3.0))


def elastic_step(sigma: float, height: int, width: int) -> int:
    """Control-point spacing in pixels for a smoothness `sigma` (fraction of the side).

    Simard et al. smooth per-pixel noise with a Gaussian of width sigma, so
    their field's autocorrelation has standard deviation sigma * sqrt(2).
    A cubic B-spline basis has variance step^2 / 3, so the spline field's
    autocorrelation has standard deviation step * sqrt(2 / 3); equal
    correlation lengths need step = sqrt(3) * sigma.
    """
    return max(1, int(round(math.sqrt(3.0) * sigma * max(height, width))))


# -- layers ---------------------------------------------------------------------


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
        # Keep uint8 inputs uint8 (Keras would cast them to float32), and
        # accept NumPy arrays like Keras' own preprocessing layers do.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

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
            "noise": signed_uniform_pairs(shape, seed),  # (..., 2): (dy, dx)
            "step": step,
            "alpha": self.alpha * max(h, w),
        }

    def transform_images(self, images, transformation, training=True):
        if not training or transformation is None:
            return images
        return warp_xla(
            images,
            identity_matrices(tf.shape(images)[0]),
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
        seed = self._get_seed_generator(self.backend._backend) if seed is None else seed
        images = data["images"] if isinstance(data, dict) else data
        batch = tf.shape(images)[0]
        layer_idxes = keras.random.randint(
            (self.num_ops, batch), 0, len(self._AUGMENT_LAYERS), seed=seed
        )
        transforms = {
            name: getattr(self, name).get_random_transformation(data, training=True, seed=seed)
            for name in self._AUGMENT_LAYERS
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
