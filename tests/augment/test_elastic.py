"""Tests of tfsynth.augment.elastic: the B-spline displacement field."""

import numpy as np
import tensorflow as tf

from tfsynth.augment import draws, elastic


def test_elastic_field_is_smooth_with_unit_expected_rms():
    step = elastic.elastic_step(0.12, 28, 28)
    n = elastic.control_points(28, step)
    noise = draws.uniform((64, n, n, 2), -1.0, 1.0, seed=1)  # what ElasticDistortion draws
    field = elastic.elastic_field(noise, 28, 28, step).numpy()
    assert (step, field.shape) == (6, (64, 28, 28, 2))
    # unit RMS on average over images (each image varies, as in Simard et al.)
    np.testing.assert_allclose(np.sqrt((field**2).mean()), 1.0, rtol=0.05)
    # neighbouring pixels move together (smooth), unlike white noise
    step_size = np.abs(np.diff(field, axis=1)).mean()
    assert step_size < 0.3 * np.abs(field).mean()


def test_bspline_upsampling_interpolates_exactly():
    # Cubic B-splines reproduce linear functions: control values on a line
    # give the same line at every pixel, whatever the spacing.
    for step in (1, 3, 4):
        n = elastic.control_points(20, step)
        ramp = (np.arange(n, dtype=np.float32) - 1) * step  # control q sits at pixel (q - 1) * step
        noise = np.broadcast_to(ramp[None, :, None, None], (1, n, n, 2)).astype(np.float32)
        field = elastic.elastic_field(tf.constant(noise), 20, 20, step).numpy()
        field *= elastic.bspline_rms(20, 20, step)  # undo the normalization
        np.testing.assert_allclose(field[0, :, 0, 0], np.arange(20), atol=1e-4)
        np.testing.assert_allclose(field[0, 5, :, 1], np.full(20, 5.0), atol=1e-4)
