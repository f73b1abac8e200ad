"""DP-SGD for the GAN trainer: what is private, and the private train_step.

What the guarantee covers: the discriminator is the only network that
sees real images, so DP-SGD is applied to its loss on the *real* batch:
each real example's gradient is clipped to L2 norm C, the clipped
gradients are summed, Gaussian noise of std sigma * C is added and the sum
is divided by the expected batch size (`tfsynth.privacy.dpsgd`). The
fake-image term of the discriminator loss and the generator's loss are
computed from generated images only, with labels drawn uniformly at
random (not the real batch's labels), so they touch no training example
and get no noise. The discriminator's weights are then a DP release, and
the generator, its EMA and every image generated later are
post-processing of it: (epsilon, delta)-DP with respect to adding or
removing one training example, as accounted by `tfsynth.privacy.accountant`.

Not covered: the training class counts (a DP trainer keeps none, so
`generate --labels match` is not available), the logged losses, and
anything trained on the real data outside this step (a `--val` monitor,
the curation classifier, `evaluate`).

The noise and the Poisson draws are keyed by a secret drawn from the OS
and never saved: noise that the seed in summary.json could regenerate
would void the guarantee. So, unlike the non-private path, a DP run is not
bit-reproducible from its seed.
"""

from __future__ import annotations

import tensorflow as tf

from tfsynth.errors import ConfigError
from tfsynth.models.diffaugment import diff_augment
from tfsynth.privacy import dpsgd
from tfsynth.privacy.dpsgd import D_LOSS_TERMS
from tfsynth.privacy.plan import PrivacyPlan


def make_private(gan, dp):
    """Makes `gan` train with DP-SGD under `dp` (a `PrivacyPlan` or its dict); returns it.

    Raises ConfigError when its training cannot be made private. Drops the
    trainer's class counts (they are not privatized) and draws the secret
    keys of the noise and of the Poisson draws.
    """
    plan = PrivacyPlan.from_dict(dp) if isinstance(dp, dict) else dp
    if gan.loss_name not in D_LOSS_TERMS or gan.n_critic != 1 or gan.r1_gamma > 0:
        raise ConfigError(
            f"dp: DP-SGD supports one critic step of the {' or '.join(D_LOSS_TERMS)} loss "
            f"without penalties; got loss={gan.loss_name}, n_critic={gan.n_critic}, "
            f"r1_gamma={gan.r1_gamma}"
        )
    dpsgd.refuse_batch_mixing(gan.discriminator, "discriminator")
    dpsgd.attach(gan, plan)
    return gan


def _fakes(gan, batch: int, seed):
    """Generated images for data-independent labels: (fake logits, fake d term, g loss)."""
    labels = None
    if gan.num_classes:
        labels = tf.random.stateless_uniform(
            [batch], seed + [5, 0], minval=0, maxval=gan.num_classes, dtype=tf.int32
        )
    noise = tf.random.stateless_normal([batch, gan.latent_dim], seed=seed)
    fake = gan.generator(gan._with_labels(noise, labels), training=True)
    fake_logits = gan._critic(fake, labels, seed)
    return D_LOSS_TERMS[gan.loss_name][1](fake_logits), gan._g_loss_fn(fake_logits)


def private_train_step(gan, data, method: str = "vectorized_map") -> dict:
    """One GAN step with a DP-SGD discriminator update (see the module docstring).

    `data` is (images, labels, weights) from `poisson_batches` (weights 0
    mark padding rows); without weights every row counts.
    """
    real, labels, weights, seed = dpsgd.step_inputs(gan, data)
    d_vars = gan.discriminator.trainable_variables
    g_vars = gan.generator.trainable_variables
    with tf.GradientTape() as g_tape, tf.GradientTape() as f_tape:
        d_fake, g_loss = _fakes(gan, gan.dp.batch_size, seed)
    if gan._augment:  # per image: augmenting the batch first mixes no examples
        real = diff_augment(real, gan._augment, seed)
    real_term = D_LOSS_TERMS[gan.loss_name][0]

    def per_example(x, y=None):
        return real_term(gan.discriminator(gan._with_labels(x, y), training=True))[:, 0]

    inputs = (real, labels) if gan.num_classes else (real,)
    real_grads, real_losses = dpsgd.planned_gradient(
        gan, gan.d_optimizer, per_example, d_vars, inputs, weights, method
    )
    fake_grads = f_tape.gradient(d_fake, d_vars)
    grads = [r if f is None else r + f for r, f in zip(real_grads, fake_grads)]
    gan.d_optimizer.apply_gradients(zip(grads, d_vars))
    gan.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))
    gan._update_ema()
    # A metric only (not private, see the module docstring): the drawn rows' mean.
    d_real = tf.reduce_sum(weights * real_losses) / tf.maximum(tf.reduce_sum(weights), 1.0)
    gan.d_loss_tracker.update_state(d_real + d_fake)
    gan.g_loss_tracker.update_state(g_loss)
    return {m.name: m.result() for m in gan.metrics}


__all__ = ["make_private", "private_train_step"]
