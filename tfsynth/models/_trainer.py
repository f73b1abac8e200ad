"""Pieces shared by the GAN and VAE trainers (optimizers, EMA, noise, scaling)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfsynth import _compat
from tfsynth.errors import ConfigError

# The key under which a trainer's `.keras` weights hold its seed generator states.
SEED_STATES_KEY = "seed_generator_states"


class ConditionalTrainer(keras.Model):
    """Base of the GAN and VAE trainers: label handling and `generate`.

    Subclasses set `kind` (for messages) and `SUBMODELS` (the networks
    their config serializes), and provide `num_classes`, `class_names`,
    `class_counts`, `seed` and a `sampler` property (the network `generate`
    runs). `get_config` holds those shared fields; a subclass adds its own.
    """

    kind = "model"
    SUBMODELS: tuple[str, ...] = ()

    def get_config(self):
        config = super().get_config()
        config.update(
            **serialize(**{name: getattr(self, name) for name in self.SUBMODELS}),
            num_classes=self.num_classes,
            class_names=self.class_names,
            class_counts=self.class_counts,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize(config, cls.SUBMODELS))

    def _with_labels(self, x, labels):
        """Network inputs: `[x, labels]` when class-conditional, else `x`."""
        return [x, labels] if self.num_classes else x

    def _unpack(self, data):
        if isinstance(data, (tuple, list)):
            images = data[0]
            labels = data[1] if len(data) > 1 else None
        else:
            images, labels = data, None
        if self.num_classes:
            if labels is None:
                raise ConfigError(f"a conditional {self.kind} needs (images, labels) batches")
            labels = tf.cast(labels, tf.int32)
        return tf.cast(images, self.compute_dtype), labels

    def generate(self, noise, labels=None):
        """Images in [-1, 1] (float32) for `noise` (N, latent_dim) and `labels` (N,)."""
        if self.num_classes and labels is None:
            raise ConfigError(f"labels: a conditional {self.kind} needs one label per noise vector")
        noise = tf.convert_to_tensor(noise, tf.float32)
        labels = None if labels is None else tf.cast(labels, tf.int32)
        return tf.cast(self.sampler(self._with_labels(noise, labels), training=False), tf.float32)

    # -- the noise stream is part of the saved state --------------------------
    def _seed_states(self) -> list:
        """The state variables of every `SeedGenerator` in the trainer (its own first).

        They are the variables that are not weights (Keras leaves metric
        state out of both lists).
        """
        weights = {id(w) for w in self.weights}
        return [v for v in self.variables if id(v) not in weights]

    def save_own_variables(self, store):
        """Saves the seed generator states with the weights (Keras does not).

        So a trainer reloaded from `.keras`, e.g. to resume after a crash,
        continues the noise and DiffAugment stream where it stopped instead
        of replaying it from the start.
        """
        super().save_own_variables(store)
        states = self._seed_states()
        if states:
            store[SEED_STATES_KEY] = np.stack([keras.ops.convert_to_numpy(v) for v in states])

    def load_own_variables(self, store):
        """Restores what `save_own_variables` wrote; a file without seed states keeps the initial ones."""
        keys = list(store.keys())
        super().load_own_variables({k: store[k] for k in keys if k != SEED_STATES_KEY})
        if SEED_STATES_KEY not in keys:
            return
        saved, states = np.asarray(store[SEED_STATES_KEY]), self._seed_states()
        if saved.shape != (len(states), 2):
            raise ValueError(
                f"{self.name}: the file holds {saved.shape[0]} seed generator states, "
                f"the model has {len(states)}"
            )
        for v, value in zip(states, saved):
            v.assign(value.astype(v.dtype))


def get_optimizer(opt, default):
    """An optimizer from an instance, a name/config, or None (-> `default()`)."""
    if opt is None:
        return default()
    return keras.optimizers.get(opt)


def with_loss_scaling(opt, dtype_policy_name: str):
    """Wraps `opt` in a LossScaleOptimizer when training in mixed_float16.

    float16 gradients underflow without loss scaling; bfloat16 has float32's
    exponent range and needs none.
    """
    if dtype_policy_name == "mixed_float16" and not isinstance(
        opt, keras.optimizers.LossScaleOptimizer
    ):
        return keras.optimizers.LossScaleOptimizer(opt)
    return opt


def replica_scale(loss: tf.Tensor) -> tf.Tensor:
    """Divides a per-replica mean loss by the replica count.

    Optimizers sum gradients across replicas, so this makes a multi-replica
    step equal to one step on the global batch.
    """
    n = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / n if n > 1 else loss


def replica_seed(seed: tf.Tensor) -> tf.Tensor:
    """Folds the replica id into a (2,) seed so replicas draw different noise."""
    ctx = tf.distribute.get_replica_context()
    seed = tf.cast(seed, tf.int32)
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return seed
    # A hash of (seed, replica id), not seed + id: adding the id to the step
    # counter would make replica r at step k repeat replica 0's noise at k + r.
    return tf.random.experimental.stateless_fold_in(seed, ctx.replica_id_in_sync_group)


def serialize(**objects) -> dict:
    """Serialized Keras objects (sub-models, optimizers) for a config dict."""
    return {k: keras.saving.serialize_keras_object(v) for k, v in objects.items()}


def deserialize(config: dict, keys) -> dict:
    """A copy of `config` with the Keras objects under `keys` rebuilt."""
    config = dict(config)
    for key in keys:
        config[key] = keras.saving.deserialize_keras_object(config[key])
    return config


class OneOptimizerCompile:
    """Mixin: the compile config of a trainer with one optimizer (VAE, Diffusion, SimCLR).

    `.keras` files store the optimizer and `jit_compile`; loading calls the
    class's own `compile`, so its defaults (loss scaling, eager build) apply.
    The default optimizer is Adam at the class's `DEFAULT_LEARNING_RATE`.
    """

    DEFAULT_LEARNING_RATE = 1e-3

    def default_optimizer(self, learning_rate: float | None = None):
        """Adam at `learning_rate` (None: `DEFAULT_LEARNING_RATE`)."""
        return keras.optimizers.Adam(learning_rate or self.DEFAULT_LEARNING_RATE)

    def get_compile_config(self):
        return {**serialize(optimizer=self.optimizer), "jit_compile": self.jit_compile}

    def compile_from_config(self, config):
        config = deserialize(config, ("optimizer",))
        self.compile(optimizer=config["optimizer"], jit_compile=config.get("jit_compile", "auto"))


def _raw(v):
    return v.value if isinstance(v, keras.Variable) else v


def ema_update(ema_vars, vars_, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * var, per device under any strategy.

    Non-trainable variables (batch-norm statistics) are copied, as they are
    already running averages.
    """

    def update_all(strategy, ema_vars, vars_):
        for e, v in zip(ema_vars, vars_):
            d = tf.cast(decay if v.trainable else 0.0, e.dtype)
            strategy.extended.update(
                _raw(e), lambda a, b, d=d: a.assign(d * a + (1.0 - d) * b), args=(_raw(v),)
            )

    _compat.maybe_merge_call(update_all, tf.distribute.get_strategy(), ema_vars, vars_)


def scaled(optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss to differentiate: divided across replicas, loss-scaled for float16.

    Call it inside the GradientTape, so the scaling is recorded.
    """
    return optimizer.scale_loss(replica_scale(loss))


def apply_gradients(optimizer, tape, scaled_loss, variables) -> None:
    """Applies the gradients of a `scaled(...)` loss (the optimizer unscales them)."""
    grads = tape.gradient(scaled_loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
