"""Per-example clipping and noise against a hand-computed step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsynth.models import losses
from tfsynth.models.networks import build_discriminator
from tfsynth.privacy.dpsgd import D_LOSS_TERMS, private_gradient


def _hand_gradient(disc, real_term, x, y, weights, clip, denominator):
    """Loop over examples: one tape each, clip in NumPy, sum, divide."""
    total = [np.zeros(v.shape, np.float64) for v in disc.trainable_variables]
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss = real_term(disc([x[i : i + 1], y[i : i + 1]], training=True))[0, 0]
        g = [
            np.asarray(tf.convert_to_tensor(t))
            for t in tape.gradient(loss, disc.trainable_variables)
        ]
        norm = np.sqrt(sum(float(np.sum(a.astype(np.float64) ** 2)) for a in g))
        scale = weights[i] * min(1.0, clip / norm)
        total = [t + scale * a for t, a in zip(total, g)]
    return [t / denominator for t in total]


@pytest.mark.parametrize("method", ["jacobian", "vectorized_map"])
def test_zero_noise_private_gradient_is_the_hand_computed_clipped_mean(method):
    keras.utils.set_random_seed(0)
    disc = build_discriminator((16, 16, 1), num_classes=2, width=4)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5, 16, 16, 1)).astype("float32")
    y = np.array([0, 1, 1, 0, 1], "int32")
    weights = np.array([1, 1, 1, 1, 0], "float32")  # the last row is padding
    real_term = D_LOSS_TERMS["dcgan"][0]

    def per_example(xb, yb):
        return real_term(disc([xb, yb], training=True))[:, 0]

    clip = 0.05  # below every example's gradient norm here: clipping is active
    got, _ = private_gradient(
        per_example, disc.trainable_variables, (tf.constant(x), tf.constant(y)),
        tf.constant(weights), clip=clip, noise_multiplier=0.0, denominator=4.0,
        seed=tf.constant([1, 2]), method=method,
    )  # fmt: skip
    want = _hand_gradient(disc, real_term, x, y, weights, clip, 4.0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-7)
    # With every example clipped to 0.05, the sum of 4 has norm <= 4 * 0.05.
    norm = np.sqrt(sum(float(np.sum(np.square(g.numpy()))) for g in got))
    assert 0 < norm <= clip + 1e-6


def test_noise_has_std_sigma_times_clip_over_batch():
    w = tf.Variable(tf.zeros([4000]))
    x = tf.zeros([8, 4000])  # zero gradients: the output is the noise alone
    g, _ = private_gradient(
        lambda x: tf.linalg.matvec(x, w), [w], (x,), tf.ones([8]), clip=2.0,
        noise_multiplier=1.5, denominator=8.0, seed=tf.constant([3, 4]),
    )  # fmt: skip
    assert float(tf.math.reduce_std(g[0])) == pytest.approx(1.5 * 2.0 / 8.0, rel=0.05)


@pytest.mark.parametrize(
    "name, d_loss", [("dcgan", losses.d_nonsaturating), ("hinge", losses.d_hinge)]
)
def test_loss_split_adds_up_to_the_discriminator_loss(name, d_loss):
    real, fake = np.array([1.5, -0.3, 0.2]), np.array([0.7, -2.0])
    real_term, fake_term = D_LOSS_TERMS[name]
    split = float(tf.reduce_mean(real_term(real)) + fake_term(fake))
    assert split == pytest.approx(float(d_loss(real, fake)), rel=1e-6)
