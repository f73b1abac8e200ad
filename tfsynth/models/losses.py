"""Pure loss functions for GANs and VAEs.

Each function takes logits or distribution parameters and returns a scalar
float32 tensor (the batch mean), so it can be checked against values
computed by hand. Discriminator losses take `(real_logits, fake_logits)`,
generator losses take `fake_logits`.

Example:

>>> import numpy as np
>>> round(float(d_hinge(np.array([2.0, 0.0]), np.array([-2.0, 0.0]))), 4)
1.0
>>> round(float(g_wasserstein(np.array([1.0, 3.0]))), 4)
-2.0
"""

from __future__ import annotations

import tensorflow as tf


def _f32(x) -> tf.Tensor:
    # Losses are always reduced in float32, also under mixed precision.
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def d_nonsaturating(real_logits, fake_logits) -> tf.Tensor:
    """DCGAN discriminator loss: -log D(x) - log(1 - D(G(z)))."""
    real_logits, fake_logits = _f32(real_logits), _f32(fake_logits)
    return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(
        tf.nn.softplus(fake_logits)
    )


def g_nonsaturating(fake_logits) -> tf.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return tf.reduce_mean(tf.nn.softplus(-_f32(fake_logits)))


def d_hinge(real_logits, fake_logits) -> tf.Tensor:
    """Hinge discriminator loss: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    real_logits, fake_logits = _f32(real_logits), _f32(fake_logits)
    return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(
        tf.nn.relu(1.0 + fake_logits)
    )


def g_hinge(fake_logits) -> tf.Tensor:
    """Hinge generator loss: -E[D(G(z))]."""
    return -tf.reduce_mean(_f32(fake_logits))


def d_wasserstein(real_logits, fake_logits) -> tf.Tensor:
    """Wasserstein critic loss: E[D(G(z))] - E[D(x)]."""
    return tf.reduce_mean(_f32(fake_logits)) - tf.reduce_mean(_f32(real_logits))


def g_wasserstein(fake_logits) -> tf.Tensor:
    """Wasserstein generator loss: -E[D(G(z))]."""
    return -tf.reduce_mean(_f32(fake_logits))


def _input_gradients(critic, x) -> tf.Tensor:
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(_f32(critic(x)))
    grads = tape.gradient(out, x)
    return tf.reshape(_f32(grads), [tf.shape(x)[0], -1])


def gradient_penalty(critic, real, fake, alpha) -> tf.Tensor:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] at interpolates.

    Args:
        critic: a callable images -> logits (labels already bound).
        real, fake: image batches of the same shape.
        alpha: interpolation weights, shape (batch, 1, 1, 1), in [0, 1];
            x_hat = real + alpha * (fake - real).
    """
    real, fake = _f32(real), _f32(fake)
    x_hat = real + _f32(alpha) * (fake - real)
    norms = tf.sqrt(tf.reduce_sum(tf.square(_input_gradients(critic, x_hat)), axis=1) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def r1_penalty(critic, real) -> tf.Tensor:
    """R1 penalty E[||grad_x D(x)||^2] on real data (multiply by gamma / 2)."""
    grads = _input_gradients(critic, _f32(real))
    return tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=1))


def kl_per_example(mean, log_var) -> tf.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) summed over dims: one value per example (N,)."""
    mean, log_var = _f32(mean), _f32(log_var)
    kl = -0.5 * (1.0 + log_var - tf.square(mean) - tf.exp(log_var))
    return tf.reduce_sum(kl, axis=-1)


def kl_divergence(mean, log_var) -> tf.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over dims, mean over the batch."""
    return tf.reduce_mean(kl_per_example(mean, log_var))


def bernoulli_per_example(images, reconstructions) -> tf.Tensor:
    """Binary cross-entropy of images in [-1, 1] as pixel probabilities, summed per example (N,).

    DP-SGD clips each example's gradient, so it needs the terms unreduced.
    """
    target = (_f32(images) + 1.0) / 2.0
    p = tf.clip_by_value((_f32(reconstructions) + 1.0) / 2.0, 1e-6, 1.0 - 1e-6)
    bce = -(target * tf.math.log(p) + (1.0 - target) * tf.math.log(1.0 - p))
    return tf.reduce_sum(tf.reshape(bce, [tf.shape(bce)[0], -1]), axis=1)


def bernoulli_reconstruction(images, reconstructions) -> tf.Tensor:
    """Binary cross-entropy between images in [-1, 1] read as pixel probabilities.

    Summed over pixels, averaged over the batch (the usual VAE likelihood term).
    """
    return tf.reduce_mean(bernoulli_per_example(images, reconstructions))


# loss option -> (discriminator loss, generator loss)
GAN_LOSSES = {
    "dcgan": (d_nonsaturating, g_nonsaturating),
    "hinge": (d_hinge, g_hinge),
    "wgan-gp": (d_wasserstein, g_wasserstein),
}
