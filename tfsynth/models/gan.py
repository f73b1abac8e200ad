"""GAN: one trainer for DCGAN, WGAN-GP and hinge GANs, conditional or not."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tfsynth.errors import ConfigError
from tfsynth.models import _trainer, losses, networks
from tfsynth.models.diffaugment import diff_augment, parse_policy


@keras.saving.register_keras_serializable(package="tfsynth")
class GAN(_trainer.ConditionalTrainer):
    """A generator/discriminator pair trained with a custom `train_step`.

    One class covers the usual families through `loss`:

    - "dcgan": non-saturating loss (Goodfellow et al.; Radford et al.),
    - "hinge": hinge loss (Lim & Ye; Miyato et al.),
    - "wgan-gp": Wasserstein loss with gradient penalty (Gulrajani et al.),
      normally with `n_critic=5`.

    With `n_critic == 1` and no penalty the discriminator and generator
    gradients come from one shared forward pass (as in the TensorFlow DCGAN
    tutorial); otherwise the critic takes `n_critic` steps, then the
    generator one. A class-conditional GAN (`num_classes > 0`) feeds labels to
    both networks; fakes are generated for the labels of the real batch.
    The generator weights are tracked by an exponential moving average
    (`ema_generator`, used by `generate`) and DiffAugment can be applied to
    everything the discriminator sees.

    Args:
        generator: model noise (or [noise, labels]) -> images in [-1, 1].
        discriminator: model images (or [images, labels]) -> logits (N, 1).
        num_classes: 0 for an unconditional GAN.
        loss: "dcgan", "hinge" or "wgan-gp".
        n_critic: discriminator steps per generator step.
        gp_weight: weight of the WGAN-GP gradient penalty (wgan-gp only).
        r1_gamma: weight of the R1 penalty on real data (0 disables).
        ema_decay: generator EMA decay, reached after a warm-up
            (decay_t = min(ema_decay, (1 + t) / (10 + t))); 0 disables the EMA.
        diffaugment: e.g. "translation,cutout,color", or None.
        class_names: names of the classes (for generated datasets).
        class_counts: training examples per class (for `--labels match`).
        seed: seed of the noise generator.
        dp: a `tfsynth.privacy.PrivacyPlan` (or its dict) to train the
            discriminator with DP-SGD (see `_private_train_step`); None trains
            as usual.

    Example:

    >>> gan = build_gan((16, 16, 1), num_classes=2, latent_dim=8, width=4)
    >>> gan.compile()
    >>> import numpy as np
    >>> x = np.random.uniform(-1, 1, (4, 16, 16, 1)).astype("float32")
    >>> h = gan.fit(x, np.array([0, 1, 0, 1]), batch_size=4, epochs=1, verbose=0)
    >>> sorted(h.history)
    ['d_loss', 'g_loss']
    >>> gan.generate(np.zeros((3, 8), "float32"), np.array([0, 1, 1])).shape
    TensorShape([3, 16, 16, 1])
    """

    kind = "GAN"
    SUBMODELS = ("generator", "discriminator")

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        *,
        num_classes: int = 0,
        loss: str = "dcgan",
        n_critic: int = 1,
        gp_weight: float = 10.0,
        r1_gamma: float = 0.0,
        ema_decay: float = 0.999,
        diffaugment: str | None = None,
        class_names: Sequence[str] | None = None,
        class_counts: Sequence[int] | None = None,
        seed: int | None = None,
        dp=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if loss not in losses.GAN_LOSSES:
            raise ConfigError(f"loss: expected one of {sorted(losses.GAN_LOSSES)}, got {loss!r}")
        if n_critic < 1:
            raise ConfigError(f"n_critic: must be >= 1, got {n_critic}")
        if not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"ema_decay: must be in [0, 1), got {ema_decay}")
        self.generator = generator
        self.discriminator = discriminator
        self.num_classes = int(num_classes)
        self.loss_name = loss
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.r1_gamma = float(r1_gamma)
        self.ema_decay = float(ema_decay)
        self.diffaugment = diffaugment or None
        self._augment = parse_policy(self.diffaugment)
        self.class_names = list(class_names) if class_names else None
        self.class_counts = [int(c) for c in class_counts] if class_counts else None
        self.seed = seed
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.image_shape = tuple(int(d) for d in generator.outputs[0].shape[1:])
        self._d_loss_fn, self._g_loss_fn = losses.GAN_LOSSES[loss]
        self.ema_generator = None
        if self.ema_decay > 0:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.penalty_tracker = keras.metrics.Mean(name="penalty") if self._penalized else None
        self.dp = None
        if dp is not None:
            from tfsynth.privacy.gan import make_private

            make_private(self, dp)
        self.built = True

    # -- properties ----------------------------------------------------------
    @property
    def _penalized(self) -> bool:
        return self.loss_name == "wgan-gp" or self.r1_gamma > 0

    @property
    def metrics(self):
        return [
            m
            for m in (self.d_loss_tracker, self.g_loss_tracker, self.penalty_tracker)
            if m is not None
        ]

    @property
    def train_steps(self):
        """Completed training steps (generator updates), a scalar variable."""
        return self.g_optimizer.iterations

    @property
    def sampler(self) -> keras.Model:
        """The network that `generate` runs: the EMA generator when present."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # -- compile -------------------------------------------------------------
    def default_optimizer(self, learning_rate: float | None = None):
        """Adam with this loss's settings (DCGAN: 2e-4, beta_1 0.5; WGAN-GP: 1e-4, 0.0, 0.9).

        `learning_rate` replaces the default rate; the betas stay.
        """
        lr, beta_1, beta_2 = (1e-4, 0.0, 0.9) if self.loss_name == "wgan-gp" else (2e-4, 0.5, 0.999)
        return keras.optimizers.Adam(learning_rate or lr, beta_1=beta_1, beta_2=beta_2)

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Sets both optimizers (defaults: Adam 2e-4, beta_1 0.5; WGAN-GP: 1e-4, 0.0, 0.9).

        Under mixed_float16 both are wrapped in a LossScaleOptimizer. They are
        built here, eagerly, because `fit` under MirroredStrategy needs the
        optimizer variables to exist inside the strategy scope.
        """
        default = self.default_optimizer
        policy = self.dtype_policy.name
        self.d_optimizer = _trainer.with_loss_scaling(
            _trainer.get_optimizer(d_optimizer, default), policy
        )
        self.g_optimizer = _trainer.with_loss_scaling(
            _trainer.get_optimizer(g_optimizer, default), policy
        )
        kwargs.pop("optimizer", None)
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        return {
            **_trainer.serialize(d_optimizer=self.d_optimizer, g_optimizer=self.g_optimizer),
            "jit_compile": self.jit_compile,
        }

    def compile_from_config(self, config):
        config = _trainer.deserialize(config, ("d_optimizer", "g_optimizer"))
        self.compile(
            d_optimizer=config["d_optimizer"],
            g_optimizer=config["g_optimizer"],
            jit_compile=config.get("jit_compile", "auto"),
        )

    # -- model ---------------------------------------------------------------
    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def _critic(self, images, labels, seed, training=True):
        if self._augment:
            images = diff_augment(images, self._augment, seed)
        return self.discriminator(self._with_labels(images, labels), training=training)

    # -- training ------------------------------------------------------------
    def _penalty(self, real, fake, labels, seed):
        """The critic's regularizer (gradient penalty, R1), or None when it has none."""
        if not self._penalized:
            return None

        def critic(x):
            # The penalty is taken on the augmented images too when DiffAugment is on.
            return self._critic(x, labels, seed, training=True)

        total = tf.constant(0.0)
        if self.loss_name == "wgan-gp":
            alpha = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1], seed=seed + [7, 0])
            total += self.gp_weight * losses.gradient_penalty(critic, real, fake, alpha)
        if self.r1_gamma > 0:
            total += 0.5 * self.r1_gamma * losses.r1_penalty(critic, real)
        return total

    def _update_ema(self) -> None:
        if self.ema_generator is not None:
            # Warm-up (as in TF's ExponentialMovingAverage with num_updates): early
            # on the EMA must forget the random initial weights quickly.
            step = tf.cast(self.g_optimizer.iterations, tf.float32)
            decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
            _trainer.ema_update(self.ema_generator.weights, self.generator.weights, decay)

    def train_step(self, data):
        if self.dp is not None:
            from tfsynth.privacy.gan import private_train_step

            return private_train_step(self, data)
        real, labels = self._unpack(data)
        batch = tf.shape(real)[0]
        penalty = None  # the last critic step's penalty; None iff penalty_tracker is None
        if not self._penalized and self.n_critic == 1:
            seed = _trainer.replica_seed(self.seed_generator.next())
            noise = tf.random.stateless_normal([batch, self.latent_dim], seed=seed)
            with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
                fake = self.generator(self._with_labels(noise, labels), training=True)
                real_logits = self._critic(real, labels, seed)
                fake_logits = self._critic(fake, labels, seed)
                d_loss = self._d_loss_fn(real_logits, fake_logits)
                g_loss = self._g_loss_fn(fake_logits)
                d_scaled = _trainer.scaled(self.d_optimizer, d_loss)
                g_scaled = _trainer.scaled(self.g_optimizer, g_loss)
            _trainer.apply_gradients(
                self.d_optimizer, d_tape, d_scaled, self.discriminator.trainable_variables
            )
            _trainer.apply_gradients(
                self.g_optimizer, g_tape, g_scaled, self.generator.trainable_variables
            )
        else:
            for _ in range(self.n_critic):
                seed = _trainer.replica_seed(self.seed_generator.next())
                noise = tf.random.stateless_normal([batch, self.latent_dim], seed=seed)
                fake = self.generator(self._with_labels(noise, labels), training=True)
                with tf.GradientTape() as d_tape:
                    real_logits = self._critic(real, labels, seed)
                    fake_logits = self._critic(fake, labels, seed)
                    d_loss = self._d_loss_fn(real_logits, fake_logits)
                    penalty = self._penalty(real, fake, labels, seed)
                    d_total = d_loss if penalty is None else d_loss + penalty
                    d_scaled = _trainer.scaled(self.d_optimizer, d_total)
                _trainer.apply_gradients(
                    self.d_optimizer, d_tape, d_scaled, self.discriminator.trainable_variables
                )
            seed = _trainer.replica_seed(self.seed_generator.next())
            noise = tf.random.stateless_normal([batch, self.latent_dim], seed=seed)
            with tf.GradientTape() as g_tape:
                fake = self.generator(self._with_labels(noise, labels), training=True)
                g_loss = self._g_loss_fn(self._critic(fake, labels, seed))
                g_scaled = _trainer.scaled(self.g_optimizer, g_loss)
            _trainer.apply_gradients(
                self.g_optimizer, g_tape, g_scaled, self.generator.trainable_variables
            )
        self._update_ema()
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        if self.penalty_tracker is not None:
            self.penalty_tracker.update_state(penalty)
        return {m.name: m.result() for m in self.metrics}

    # -- serialization -------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            loss=self.loss_name,
            n_critic=self.n_critic,
            gp_weight=self.gp_weight,
            r1_gamma=self.r1_gamma,
            ema_decay=self.ema_decay,
            diffaugment=self.diffaugment,
        )
        if self.dp is not None:
            config["dp"] = self.dp.to_dict()
        return config


def build_gan(
    image_shape: Sequence[int],
    num_classes: int = 0,
    *,
    loss: str = "dcgan",
    latent_dim: int = 64,
    width: int = 32,
    n_critic: int | None = None,
    **kwargs,
) -> GAN:
    """A GAN with the tfsynth networks sized for `image_shape`.

    WGAN-GP gets `n_critic=5` and a discriminator without normalization
    (the gradient penalty is per example) unless told otherwise; the other
    losses get `n_critic=1`. Extra keyword arguments go to `GAN`.
    """
    generator = networks.build_generator(image_shape, latent_dim, num_classes, width)
    discriminator = networks.build_discriminator(image_shape, num_classes, width)
    if n_critic is None:
        n_critic = 5 if loss == "wgan-gp" else 1
    return GAN(
        generator, discriminator, num_classes=num_classes, loss=loss, n_critic=n_critic, **kwargs
    )
