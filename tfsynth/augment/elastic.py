"""The elastic displacement field: random control points, cubic B-spline interpolation.

`elastic_field` turns control-point noise into a smooth per-pixel field
with unit expected RMS; `elastic_step` sets the control-point spacing
from Simard et al.'s smoothness sigma; `upsample`, `bspline_taps` and
`bspline_rms` are the spline itself. `tfsynth.augment.warp` composes the
field with the affine part of a warp.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


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


def upsample(values: tf.Tensor, step: int, size: int, axis: int) -> tf.Tensor:
    """Cubic B-spline interpolation of control points along `axis` to `size` pixels.

    Control point j sits at pixel (j - 1) * step, so `control_points(size,
    step)` values cover the pixels 0 .. size - 1.
    """
    # out[step * q + r] = sum_k taps[r, k] * values[q + k]: `step` dense
    # weighted sums of shifted slices, interleaved. Static slices fuse in
    # XLA; an einsum with the tap matrix and a constant-index gather were
    # slower (bench/results/design_measurements.md).
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
    field = upsample(upsample(noise, step, width, 2), step, height, 1)
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
