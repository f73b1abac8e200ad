"""Loss functions against values computed by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfsynth.models import losses


def sp(x):
    return math.log1p(math.exp(x))


def test_nonsaturating_by_hand():
    real, fake = np.array([1.0, -2.0]), np.array([0.5, 0.0])
    want_d = (sp(-1.0) + sp(2.0)) / 2 + (sp(0.5) + sp(0.0)) / 2
    assert float(losses.d_nonsaturating(real, fake)) == pytest.approx(want_d, rel=1e-6)
    assert float(losses.g_nonsaturating(fake)) == pytest.approx((sp(-0.5) + sp(0.0)) / 2, rel=1e-6)


def test_hinge_by_hand():
    real, fake = np.array([2.0, 0.5, -1.0]), np.array([-3.0, 0.0, 1.0])
    # relu(1 - r): 0, 0.5, 2 -> 2.5/3 ; relu(1 + f): 0, 1, 2 -> 3/3
    assert float(losses.d_hinge(real, fake)) == pytest.approx(2.5 / 3 + 1.0, rel=1e-6)
    assert float(losses.g_hinge(fake)) == pytest.approx(2.0 / 3, rel=1e-6)


def test_wasserstein_by_hand():
    real, fake = np.array([1.0, 3.0]), np.array([-1.0, 0.0])
    assert float(losses.d_wasserstein(real, fake)) == pytest.approx(-0.5 - 2.0)
    assert float(losses.g_wasserstein(fake)) == pytest.approx(0.5)


def test_gradient_penalty_linear_critic():
    # D(x) = sum(w * x) has gradient w everywhere: penalty = (||w|| - 1)^2.
    w = tf.constant(np.full((1, 2, 2, 1), 1.5, np.float32))  # ||w|| = 3

    def critic(x):
        return tf.reduce_sum(w * x, axis=[1, 2, 3])

    real = tf.zeros((3, 2, 2, 1))
    fake = tf.ones((3, 2, 2, 1))
    alpha = tf.constant([0.0, 0.5, 1.0], shape=(3, 1, 1, 1))
    assert float(losses.gradient_penalty(critic, real, fake, alpha)) == pytest.approx(4.0, rel=1e-5)


def test_gradient_penalty_uses_interpolates():
    # D(x) = sum(x^2): gradient 2x at x_hat = alpha * fake (real = 0), norm 2*alpha*2.
    def critic(x):
        return tf.reduce_sum(tf.square(x), axis=[1, 2, 3])

    real, fake = tf.zeros((2, 2, 2, 1)), tf.ones((2, 2, 2, 1))
    alpha = tf.constant([0.25, 0.5], shape=(2, 1, 1, 1))
    # norms: 2 * alpha * sqrt(4) = 1.0 and 2.0 -> penalties 0 and 1 -> mean 0.5
    assert float(losses.gradient_penalty(critic, real, fake, alpha)) == pytest.approx(0.5, rel=1e-5)


def test_r1_penalty_by_hand():
    def critic(x):
        return tf.reduce_sum(3.0 * x, axis=[1, 2, 3])

    real = tf.zeros((2, 2, 2, 1))  # gradient 3 in 4 pixels -> ||g||^2 = 36
    assert float(losses.r1_penalty(critic, real)) == pytest.approx(36.0, rel=1e-6)


def test_kl_by_hand():
    mean = np.array([[0.0, 1.0], [2.0, 0.0]], np.float32)
    log_var = np.array([[0.0, 0.0], [0.0, math.log(2.0)]], np.float32)
    # row 0: 0 + 0.5 ; row 1: 2 + (-0.5)(1 + ln2 - 2) = 2 + 0.5*(1 - ln2)
    want = (0.5 + 2.0 + 0.5 * (1 - math.log(2.0))) / 2
    assert float(losses.kl_divergence(mean, log_var)) == pytest.approx(want, rel=1e-5)
    assert float(losses.kl_divergence(np.zeros((3, 4)), np.zeros((3, 4)))) == 0.0


def test_bernoulli_reconstruction_by_hand():
    images = np.array([[1.0, -1.0]], np.float32)  # targets 1, 0
    recon = np.array([[0.0, 0.0]], np.float32)  # p = 0.5 each
    assert float(losses.bernoulli_reconstruction(images, recon)) == pytest.approx(
        2 * math.log(2.0), rel=1e-5
    )


def test_losses_are_float32_for_float16_inputs():
    x = tf.constant([1.0, -1.0], tf.float16)
    for d, g in losses.GAN_LOSSES.values():
        assert d(x, x).dtype == tf.float32
        assert g(x).dtype == tf.float32
