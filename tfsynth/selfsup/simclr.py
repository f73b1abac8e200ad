"""`SimCLR`: the contrastive trainer (a `keras.Model` with its own `train_step`)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfsynth.errors import ConfigError
from tfsynth.models import _trainer
from tfsynth.selfsup.networks import build_encoder, build_projection_head, nt_xent_loss


@keras.saving.register_keras_serializable(package="tfsynth")
class SimCLR(_trainer.OneOptimizerCompile, keras.Model):
    """SimCLR: an encoder and a projection head trained with NT-Xent on pairs of views.

    `fit` takes batches `(view1, view2)` of float images in [-1, 1], two
    augmentations of the same images (`tfsynth.selfsup.train` builds them
    on tf.data with a tfsynth augmentation policy); `train_step` (run by
    `fit` under `tf.function`) encodes both, projects them and minimizes
    `nt_xent_loss`. Calling the model returns the encoder's features.

    Args:
        encoder: images -> features (`build_encoder`).
        projector: features -> projections (`build_projection_head`).
        temperature: the NT-Xent temperature (> 0).

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> model = build_simclr((16, 16, 1), width=4, feature_dim=8, projection_dim=4)
    >>> model.compile()
    >>> x = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)).astype("float32")
    >>> views = tf.data.Dataset.from_tensor_slices((x, x[::-1])).batch(4)
    >>> sorted(model.fit(views, epochs=1, verbose=0, shuffle=False).history)
    ['loss']
    >>> model(x).shape
    TensorShape([4, 8])
    """

    def __init__(
        self,
        encoder: keras.Model,
        projector: keras.Model,
        *,
        temperature: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ConfigError(f"temperature: must be > 0, got {temperature}")
        self.encoder = encoder
        self.projector = projector
        self.temperature = float(temperature)
        self.image_shape = tuple(int(d) for d in encoder.inputs[0].shape[1:])
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker]

    def compile(self, optimizer=None, **kwargs):
        """Adam(DEFAULT_LEARNING_RATE) by default, built eagerly (as the other trainers)."""
        opt = _trainer.get_optimizer(optimizer, self.default_optimizer)
        super().compile(optimizer=opt, **kwargs)
        self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=False):
        return self.encoder(inputs, training=training)

    def train_step(self, data):
        view1, view2 = data[0], data[1]
        with tf.GradientTape() as tape:
            z1 = self.projector(self.encoder(view1, training=True), training=True)
            z2 = self.projector(self.encoder(view2, training=True), training=True)
            loss = nt_xent_loss(z1, z2, self.temperature)
            scaled = _trainer.scaled(self.optimizer, loss)
        _trainer.apply_gradients(self.optimizer, tape, scaled, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def get_config(self):
        config = super().get_config()
        config.update(
            **_trainer.serialize(encoder=self.encoder, projector=self.projector),
            temperature=self.temperature,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**_trainer.deserialize(config, ("encoder", "projector")))


def build_simclr(
    image_shape,
    *,
    width: int = 16,
    feature_dim: int = 128,
    projection_dim: int = 64,
    temperature: float = 0.2,
    seed: int = 0,
) -> SimCLR:
    """A `SimCLR` trainer with tfsynth's encoder and projection head."""
    encoder = build_encoder(image_shape, width=width, feature_dim=feature_dim, seed=seed)
    projector = build_projection_head(feature_dim, projection_dim=projection_dim, seed=seed)
    return SimCLR(encoder, projector, temperature=temperature)
