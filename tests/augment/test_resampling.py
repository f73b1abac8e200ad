"""Tests of tfsynth.augment.resampling: the packed-quad sampler against the gather sampler."""

import numpy as np
import pytest
import tensorflow as tf

from tfsynth.augment import resampling


@pytest.mark.parametrize("channels,fill", [(1, 0), (3, 200)])
def test_quad_sampler_equals_the_gather_sampler(channels, fill):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 9, 7, channels), dtype=np.uint8)
    ys, xs = np.meshgrid(np.arange(9.0), np.arange(7.0), indexing="ij")
    # in-image, fractional, just outside and far outside (clamped into the padding)
    src_y = (ys * 1.7 - 4.3 + rng.normal(0, 2, (3, 9, 7))).astype(np.float32)
    src_x = (xs * 1.9 - 5.1 + rng.normal(0, 2, (3, 9, 7))).astype(np.float32)
    src_y[0, 0, 0], src_x[0, 0, 1] = -40.5, 55.25
    want = resampling.sample_images(tf.constant(x, tf.float32), src_y, src_x, fill_value=fill)
    got = resampling.sample_quads(resampling.pack_quads(x, fill), src_y, src_x)
    assert got.shape == x.shape and got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-4)
    assert resampling.uses_quads(tf.uint8, "constant", "bilinear")
    assert not resampling.uses_quads(tf.float32, "constant", "bilinear")
    assert not resampling.uses_quads(tf.uint8, "reflect", "bilinear")
