"""Diffusion: a class-conditional DDPM trainer with a DDIM sampler and guidance."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import tensorflow as tf

from tfsynth.errors import ConfigError
from tfsynth.models import _trainer
from tfsynth.models.unet import build_unet

PREDICTIONS = ("eps", "v")
# Cosine schedule (Nichol & Dhariwal, 2021): alpha_bar(t) = cos(theta(t))**2 with
# theta linear in t from the s = 0.008 offset at t = 0 to arccos(0.02) at t = 1
# (their clipping of the last betas, as a bound on the final signal rate).
THETA_MIN = 0.008 / 1.008 * math.pi / 2
THETA_MAX = math.acos(0.02)


def schedule(t):
    """(signal_rate, noise_rate) at times t in [0, 1]: sqrt(alpha_bar), sqrt(1 - alpha_bar)."""
    theta = THETA_MIN + tf.cast(t, tf.float32) * (THETA_MAX - THETA_MIN)
    return tf.cos(theta), tf.sin(theta)


def _bcast(r):
    return tf.reshape(r, [-1, 1, 1, 1])


def diffuse(x0, eps, t):
    """x_t = signal * x0 + noise * eps for (N, H, W, C) x0, eps and (N,) t."""
    s, n = schedule(t)
    return _bcast(s) * x0 + _bcast(n) * eps


def target(x0, eps, t, prediction: str):
    """What the network learns: eps, or v = signal * eps - noise * x0 (Salimans & Ho, 2022)."""
    if prediction == "eps":
        return eps
    s, n = schedule(t)
    return _bcast(s) * eps - _bcast(n) * x0


def split(x_t, pred, t, prediction: str):
    """(x0_hat, eps_hat) from the network's prediction at x_t."""
    s, n = schedule(t)
    s, n = _bcast(s), _bcast(n)
    if prediction == "eps":
        return (x_t - n * pred) / s, pred
    return s * x_t - n * pred, n * x_t + s * pred


def diffusion_loss(pred, x0, eps, t, prediction: str):
    """Mean squared error between the prediction and `target` (float32 scalar)."""
    diff = tf.cast(pred, tf.float32) - target(x0, eps, t, prediction)
    return tf.reduce_mean(tf.square(diff))


def draw_seeds(step_seed):
    """Independent (2,) seeds for a training step's t, eps and label dropout.

    Split from the replica's step seed, not offset: the SeedGenerator's next
    seed is this one + [0, 1], so offsets would repeat draws across steps.
    """
    seeds = tf.random.experimental.stateless_split(_trainer.replica_seed(step_seed), 3)
    return seeds[0], seeds[1], seeds[2]


@keras.saving.register_keras_serializable(package="tfsynth")
class Diffusion(_trainer.OneOptimizerCompile, _trainer.ConditionalTrainer):
    """A denoising diffusion model (DDPM, Ho et al.) trained with a custom `train_step`.

    Training draws t ~ U(0, 1) and eps ~ N(0, I) per image, noises it with
    the cosine schedule (`schedule`) and regresses the U-Net's output on eps
    or on v (`prediction`). A class-conditional model (`num_classes > 0`)
    replaces each label by the "no label" index `num_classes` with
    probability `label_dropout`, so the same network also learns the
    unconditional score for classifier-free guidance.

    `generate` runs the deterministic DDIM sampler (Song et al., eta = 0)
    on the EMA network: `steps` denoising steps from t = 1 to 0, mixing the
    predictions as uncond + guidance * (cond - uncond) (0: unconditional,
    1: conditional, > 1: classifier-free guidance). The initial noise comes
    in as (N, latent_dim) with latent_dim = H * W * C, so the shared noise
    helpers (`tfsynth.models.sampling`) work unchanged.

    Args:
        network: the U-Net ([images, time] or [images, time, labels] -> (N, H, W, C)).
        num_classes: 0 for an unconditional model.
        prediction: "eps" or "v".
        label_dropout: probability of training on the "no label" index.
        ema_decay: EMA decay of the sampling network (with warm-up, as `GAN`).
        sample_steps: default DDIM steps of `generate`.
        guidance: default guidance of `generate`.
        class_names, class_counts, seed: as for `GAN`.

    Example:

    >>> import numpy as np
    >>> m = build_diffusion((16, 16, 1), num_classes=2, width=4, sample_steps=2)
    >>> m.compile()
    >>> x = np.random.uniform(-1, 1, (4, 16, 16, 1)).astype("float32")
    >>> sorted(m.fit(x, np.array([0, 1, 0, 1]), batch_size=4, verbose=0).history)
    ['loss']
    >>> m.generate(np.zeros((3, m.latent_dim), "float32"), np.array([0, 1, 1])).shape
    TensorShape([3, 16, 16, 1])
    """

    DEFAULT_LEARNING_RATE = 2e-4

    kind = "diffusion model"
    SUBMODELS = ("network",)

    def __init__(
        self,
        network: keras.Model,
        *,
        num_classes: int = 0,
        prediction: str = "eps",
        label_dropout: float = 0.1,
        ema_decay: float = 0.999,
        sample_steps: int = 20,
        guidance: float = 1.0,
        class_names: Sequence[str] | None = None,
        class_counts: Sequence[int] | None = None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if prediction not in PREDICTIONS:
            raise ConfigError(f"prediction: expected 'eps' or 'v', got {prediction!r}")
        if not 0.0 <= label_dropout < 1.0:
            raise ConfigError(f"label_dropout: must be in [0, 1), got {label_dropout}")
        if not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"ema_decay: must be in [0, 1), got {ema_decay}")
        self.network = network
        self.num_classes = int(num_classes)
        self.prediction = prediction
        self.label_dropout = float(label_dropout)
        self.ema_decay = float(ema_decay)
        self.sample_steps = _check_steps(sample_steps)
        self.guidance = _check_guidance(guidance)
        self.class_names = list(class_names) if class_names else None
        self.class_counts = [int(c) for c in class_counts] if class_counts else None
        self.seed = seed
        self.image_shape = tuple(int(d) for d in network.inputs[0].shape[1:])
        self.latent_dim = math.prod(self.image_shape)
        has_labels = len(network.inputs) > 2
        if has_labels != bool(self.num_classes):
            raise ConfigError(
                f"network: {'has' if has_labels else 'lacks'} a label input but num_classes={num_classes}"
            )
        self.ema_network = None
        if self.ema_decay > 0:
            self.ema_network = keras.models.clone_model(network)
            self.ema_network.set_weights(network.get_weights())
            self.ema_network.trainable = False
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._sample_fns: dict = {}
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker]

    @property
    def train_steps(self):
        """Completed training steps, a scalar variable."""
        return self.optimizer.iterations

    @property
    def sampler(self) -> keras.Model:
        """The network that `generate` runs: the EMA network when present."""
        return self.ema_network if self.ema_network is not None else self.network

    # -- compile -------------------------------------------------------------
    def compile(self, optimizer=None, **kwargs):
        """Adam(DEFAULT_LEARNING_RATE) by default; loss-scaled under mixed_float16; built eagerly."""
        opt = _trainer.get_optimizer(optimizer, self.default_optimizer)
        opt = _trainer.with_loss_scaling(opt, self.dtype_policy.name)
        super().compile(optimizer=opt, **kwargs)
        self.optimizer.build(self.network.trainable_variables)

    # -- model ---------------------------------------------------------------
    def _inputs(self, x, t, labels):
        return [x, t, labels] if self.num_classes else [x, t]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def train_step(self, data):
        x0, labels = self._unpack(data)
        x0 = tf.cast(x0, tf.float32)
        batch = tf.shape(x0)[0]
        t_seed, eps_seed, drop_seed = draw_seeds(self.seed_generator.next())
        t = tf.random.stateless_uniform([batch], seed=t_seed)
        eps = tf.random.stateless_normal(tf.shape(x0), seed=eps_seed)
        if self.num_classes and self.label_dropout > 0:
            drop = tf.random.stateless_uniform([batch], seed=drop_seed) < self.label_dropout
            labels = tf.where(drop, self.num_classes, labels)
        x_t = diffuse(x0, eps, t)
        with tf.GradientTape() as tape:
            pred = self.network(self._inputs(x_t, t, labels), training=True)
            loss = diffusion_loss(pred, x0, eps, t, self.prediction)
            scaled = _trainer.scaled(self.optimizer, loss)
        _trainer.apply_gradients(self.optimizer, tape, scaled, self.network.trainable_variables)
        if self.ema_network is not None:
            step = tf.cast(self.optimizer.iterations, tf.float32)
            decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
            _trainer.ema_update(self.ema_network.weights, self.network.weights, decay)
        self.loss_tracker.update_state(loss)
        return {m.name: m.result() for m in self.metrics}

    # -- sampling ------------------------------------------------------------
    def set_sampling(self, steps: int | None = None, guidance: float | None = None) -> Diffusion:
        """Sets the defaults of `generate` (None keeps one); saved with the model.

        Everything that samples without passing steps and guidance (curation,
        fusion on the fly, validation, export) uses these. Returns self.
        """
        steps, guidance = check_sampling(steps, guidance)
        if steps is not None:
            self.sample_steps = steps
        if guidance is not None:
            self.guidance = guidance
        return self

    def generate(self, noise, labels=None, steps: int | None = None, guidance: float | None = None):
        """DDIM samples in [-1, 1] (float32, N x H x W x C) from `noise` (N, latent_dim).

        Deterministic: the same noise, labels, steps and guidance give the
        same images. `steps` and `guidance` default to `sample_steps` and
        `guidance`; an unconditional model ignores labels and guidance.
        """
        steps = self.sample_steps if steps is None else _check_steps(steps)
        guidance = self.guidance if guidance is None else _check_guidance(guidance)
        if self.num_classes and labels is None:
            raise ConfigError(f"labels: a conditional {self.kind} needs one label per noise vector")
        x = tf.reshape(tf.convert_to_tensor(noise, tf.float32), [-1, *self.image_shape])
        if not self.num_classes:
            mode = "plain"
            labels = tf.zeros([tf.shape(x)[0]], tf.int32)
        else:
            mode = {0.0: "uncond", 1.0: "plain"}.get(guidance, "guided")
            labels = tf.cast(labels, tf.int32)
        fn = self._sample_fns.get(mode)
        if fn is None:
            fn = self._sample_fns[mode] = tf.function(
                lambda x, y, n, w: self._ddim(x, y, n, w, mode), reduce_retracing=True
            )
        return fn(x, labels, tf.constant(steps, tf.int32), tf.constant(guidance, tf.float32))

    def _predict(self, x, t, labels, guidance, mode):
        net = self.sampler
        tt = tf.fill([tf.shape(x)[0]], t)
        if not self.num_classes:
            return net(self._inputs(x, tt, None), training=False)
        if mode == "uncond":
            labels = tf.fill(tf.shape(labels), self.num_classes)
        if mode != "guided":
            return net([x, tt, labels], training=False)
        # One pass over [x, x] with [labels, no label], then mix.
        both = net(
            [
                tf.concat([x, x], 0),
                tf.concat([tt, tt], 0),
                tf.concat([labels, tf.fill(tf.shape(labels), self.num_classes)], 0),
            ],
            training=False,
        )
        cond, uncond = tf.split(tf.cast(both, tf.float32), 2)
        return uncond + guidance * (cond - uncond)

    def _ddim(self, x, labels, steps, guidance, mode):
        """The whole DDIM loop (eta = 0) as one tf.while_loop, t from 1 down to 0."""
        n = tf.cast(steps, tf.float32)

        def body(i, x, x0):
            t = 1.0 - tf.cast(i, tf.float32) / n
            t_next = 1.0 - tf.cast(i + 1, tf.float32) / n
            pred = tf.cast(self._predict(x, t, labels, guidance, mode), tf.float32)
            x0, eps = split(x, pred, tf.reshape(t, [1]), self.prediction)
            x0 = tf.clip_by_value(x0, -1.0, 1.0)
            s, sn = schedule(t_next)
            return i + 1, s * x0 + sn * eps, x0

        _, _, x0 = tf.while_loop(
            lambda i, x, x0: i < steps, body, (tf.constant(0, tf.int32), x, tf.zeros_like(x))
        )
        return x0

    # -- serialization -------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            prediction=self.prediction,
            label_dropout=self.label_dropout,
            ema_decay=self.ema_decay,
            sample_steps=self.sample_steps,
            guidance=self.guidance,
        )
        return config


def check_sampling(steps=None, guidance=None) -> tuple[int | None, float | None]:
    """Validated (steps, guidance) of a DDIM sampler; None passes through.

    >>> check_sampling(10, 1.5)
    (10, 1.5)
    """
    return (
        None if steps is None else _check_steps(steps),
        None if guidance is None else _check_guidance(guidance),
    )


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps: DDIM sampling needs an integer >= 1, got {steps!r}")
    return int(steps)


def _check_guidance(guidance) -> float:
    try:
        g = float(guidance)
    except (TypeError, ValueError):
        raise ConfigError(f"guidance: expected a number >= 0, got {guidance!r}") from None
    if not g >= 0 or math.isinf(g):
        raise ConfigError(f"guidance: must be a finite number >= 0 (0 = unconditional), got {g}")
    return g


def build_diffusion(
    image_shape: Sequence[int],
    num_classes: int = 0,
    *,
    width: int = 32,
    levels: int | None = None,
    blocks: int = 1,
    attention: bool = True,
    **kwargs,
) -> Diffusion:
    """A `Diffusion` trainer with a `build_unet` network sized for `image_shape`."""
    network = build_unet(
        image_shape, num_classes, width, levels=levels, blocks=blocks, attention=attention
    )
    return Diffusion(network, num_classes=num_classes, **kwargs)
