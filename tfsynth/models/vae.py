"""VAE and conditional VAE with a beta weight on the KL term."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tfsynth.errors import ConfigError
from tfsynth.models import _trainer, losses, networks


@keras.saving.register_keras_serializable(package="tfsynth")
class VAE(_trainer.OneOptimizerCompile, _trainer.ConditionalTrainer):
    """A (conditional) variational autoencoder with a custom `train_step`.

    The loss is the Bernoulli reconstruction term (pixels in [-1, 1] read as
    probabilities) plus `beta` times KL(q(z|x) || N(0, I)) (Kingma & Welling;
    beta-VAE: Higgins et al.). With `num_classes > 0` encoder and decoder both
    see the label (a CVAE, Sohn et al.), so `generate` draws the requested
    class.

    Args:
        encoder: model images (or [images, labels]) -> (z_mean, z_log_var).
        decoder: model z (or [z, labels]) -> images in [-1, 1].
        num_classes: 0 for an unconditional VAE.
        beta: KL weight.
        class_names, class_counts: as for `GAN`.
        seed: seed of the sampling noise.
        dp: a `tfsynth.privacy.PrivacyPlan` (or its dict) to train encoder
            and decoder with DP-SGD (`tfsynth.privacy.vae`); None trains as usual.

    Example:

    >>> vae = build_vae((16, 16, 1), latent_dim=4, width=4)
    >>> vae.compile()
    >>> import numpy as np
    >>> x = np.random.uniform(-1, 1, (4, 16, 16, 1)).astype("float32")
    >>> sorted(vae.fit(x, batch_size=4, epochs=1, verbose=0).history)
    ['kl_loss', 'loss', 'reconstruction_loss']
    >>> vae.generate(np.zeros((2, 4), "float32")).shape
    TensorShape([2, 16, 16, 1])
    """

    kind = "VAE"
    SUBMODELS = ("encoder", "decoder")

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        *,
        num_classes: int = 0,
        beta: float = 1.0,
        class_names: Sequence[str] | None = None,
        class_counts: Sequence[int] | None = None,
        seed: int | None = None,
        dp=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if beta < 0:
            raise ConfigError(f"beta: must be >= 0, got {beta}")
        self.encoder = encoder
        self.decoder = decoder
        self.num_classes = int(num_classes)
        self.beta = float(beta)
        self.class_names = list(class_names) if class_names else None
        self.class_counts = [int(c) for c in class_counts] if class_counts else None
        self.seed = seed
        self.latent_dim = int(decoder.inputs[0].shape[-1])
        self.image_shape = tuple(int(d) for d in decoder.outputs[0].shape[1:])
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.rec_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.dp = None
        if dp is not None:
            from tfsynth.privacy.vae import make_private

            make_private(self, dp)
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.rec_tracker, self.kl_tracker]

    @property
    def train_steps(self):
        """Completed training steps, a scalar variable."""
        return self.optimizer.iterations

    @property
    def sampler(self) -> keras.Model:
        return self.decoder

    def compile(self, optimizer=None, **kwargs):
        """Adam(DEFAULT_LEARNING_RATE) by default; loss-scaled under mixed_float16; built eagerly."""
        opt = _trainer.get_optimizer(optimizer, self.default_optimizer)
        opt = _trainer.with_loss_scaling(opt, self.dtype_policy.name)
        super().compile(optimizer=opt, **kwargs)
        self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=False):
        images, labels = self._unpack(inputs)
        z_mean, _ = self.encoder(self._with_labels(images, labels), training=training)
        return self.decoder(self._with_labels(z_mean, labels), training=training)

    def train_step(self, data):
        if self.dp is not None:
            from tfsynth.privacy.vae import private_train_step

            return private_train_step(self, data)
        images, labels = self._unpack(data)
        seed = _trainer.replica_seed(self.seed_generator.next())
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(self._with_labels(images, labels), training=True)
            eps = tf.random.stateless_normal(tf.shape(z_mean), seed=seed)
            z = z_mean + tf.exp(0.5 * z_log_var) * eps
            recon = self.decoder(self._with_labels(z, labels), training=True)
            rec = losses.bernoulli_reconstruction(images, recon)
            kl = losses.kl_divergence(z_mean, z_log_var)
            total = rec + self.beta * kl
            scaled = _trainer.scaled(self.optimizer, total)
        _trainer.apply_gradients(self.optimizer, tape, scaled, self.trainable_variables)
        self.loss_tracker.update_state(total)
        self.rec_tracker.update_state(rec)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        config = {**super().get_config(), "beta": self.beta}
        if self.dp is not None:
            config["dp"] = self.dp.to_dict()
        return config


def build_vae(
    image_shape: Sequence[int],
    num_classes: int = 0,
    *,
    latent_dim: int = 16,
    width: int = 32,
    **kwargs,
) -> VAE:
    """A VAE (CVAE when `num_classes > 0`) with the tfsynth encoder/decoder."""
    encoder = networks.build_encoder(image_shape, latent_dim, num_classes, width)
    decoder = networks.build_decoder(image_shape, latent_dim, num_classes, width)
    return VAE(encoder, decoder, num_classes=num_classes, **kwargs)
