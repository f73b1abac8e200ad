"""DP-SGD for the VAE trainer (`vae`, `cvae`): what is private, and the private train_step.

What the guarantee covers: the encoder reads every real image and the
decoder is trained to reconstruct it, so both networks learn from the data
and the whole VAE loss is the private one. Each example's loss,
reconstruction + beta * KL with its own reparameterization noise, is
differentiated with respect to all trainable variables (encoder and decoder
together); each gradient is clipped to L2 norm C, the clipped gradients are
summed, Gaussian noise of std sigma * C is added and the sum is divided by
the expected batch size (`tfsynth.privacy.dpsgd`). The weights are then a DP
release, and the decoder and every image generated from prior noise later
are post-processing of them: (epsilon, delta)-DP with respect to adding or
removing one training example, as accounted by `tfsynth.privacy.accountant`.

Not covered, as for the GANs (`tfsynth.privacy.gan`): the training class
counts (a DP cvae keeps none, so `generate --labels match` is not
available), the logged losses, and anything trained on the real data
outside this step. Reconstructions of real images (`vae(x)`) are outputs
of the private weights too, but on a real input: publishing one shows that
input. The noise keys are secret, as for the GANs.

Example:

>>> from tfsynth.models import build_model
>>> from tfsynth.privacy import PrivacyPlan
>>> plan = PrivacyPlan(epsilon=None, delta=1e-5, clip=1.0, noise_multiplier=1.0,
...                    num_examples=40, batch_size=4, physical_batch=8, steps=10)
>>> vae = build_model("cvae", (16, 16, 1), 3, latent_dim=4, width=4, dp=plan)
>>> vae.dp.clip, vae.class_counts
(1.0, None)
"""

from __future__ import annotations

import tensorflow as tf

from tfsynth.models import losses
from tfsynth.privacy import dpsgd
from tfsynth.privacy.plan import PrivacyPlan


def make_private(vae, dp):
    """Makes `vae` train with DP-SGD under `dp` (a `PrivacyPlan` or its dict); returns it.

    Raises ConfigError when a network mixes the examples of a batch. Drops
    the class counts and draws the secret keys (`dpsgd.attach`).
    """
    plan = PrivacyPlan.from_dict(dp) if isinstance(dp, dict) else dp
    dpsgd.refuse_batch_mixing(vae.encoder, "encoder")
    dpsgd.refuse_batch_mixing(vae.decoder, "decoder")
    dpsgd.attach(vae, plan)
    return vae


def loss_terms(vae, images, eps, labels=None):
    """(reconstruction, KL) per example (N,), for reparameterization noise `eps` (N, latent)."""
    z_mean, z_log_var = vae.encoder(vae._with_labels(images, labels), training=True)
    z = z_mean + tf.exp(0.5 * z_log_var) * tf.cast(eps, z_mean.dtype)
    recon = vae.decoder(vae._with_labels(z, labels), training=True)
    return (
        losses.bernoulli_per_example(images, recon),
        losses.kl_per_example(z_mean, z_log_var),
    )


def private_train_step(vae, data, method: str = "vectorized_map") -> dict:
    """One VAE step with a DP-SGD update of all its weights (see the module docstring).

    `data` is (images, labels, weights) from `poisson_batches` (weights 0
    mark padding rows); without weights every row counts.
    """
    images, labels, weights, seed = dpsgd.step_inputs(vae, data)
    # The noise is an input, one row per example, so that vectorizing over
    # examples gives each the draw the batch would.
    eps = tf.random.stateless_normal([tf.shape(images)[0], vae.latent_dim], seed=seed)

    def per_example(x, e, y=None):
        rec, kl = loss_terms(vae, x, e, y)
        return rec + vae.beta * kl

    variables = vae.trainable_variables
    # A metric only (not private): the pre-update losses of the drawn rows.
    rec, kl = loss_terms(vae, images, eps, labels)
    inputs = (images, eps, labels) if vae.num_classes else (images, eps)
    grads, _ = dpsgd.planned_gradient(
        vae, vae.optimizer, per_example, variables, inputs, weights, method
    )
    vae.optimizer.apply_gradients(zip(grads, variables))
    vae.loss_tracker.update_state(rec + vae.beta * kl, sample_weight=weights)
    vae.rec_tracker.update_state(rec, sample_weight=weights)
    vae.kl_tracker.update_state(kl, sample_weight=weights)
    return {m.name: m.result() for m in vae.metrics}


__all__ = ["loss_terms", "make_private", "private_train_step"]
