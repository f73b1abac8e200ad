"""`PrivacyBudget`: the Keras callback that accounts DP-SGD steps and stops at the budget."""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from tfsynth.privacy.plan import PrivacyPlan


class PrivacyBudget(keras.callbacks.Callback):
    """Logs the epsilon spent after each epoch and stops training when the budget is spent.

    The epsilon goes into the epoch logs (`dp_epsilon`, so History and the
    progress bar show it) and, with `log_dir`, to TensorBoard as the scalar
    `dp_epsilon`. With a target epsilon, training stops after
    `plan.max_steps` steps (the model's `train_steps`).

    Example:

    >>> plan = PrivacyPlan(epsilon=None, delta=1e-5, clip=1.0, noise_multiplier=1.0,
    ...                    num_examples=1000, batch_size=10, physical_batch=25, steps=50)
    >>> PrivacyBudget(plan).plan.max_steps is None
    True
    """

    def __init__(self, plan: PrivacyPlan | dict, log_dir: str | os.PathLike | None = None):
        super().__init__()
        self.plan = PrivacyPlan.from_dict(plan) if isinstance(plan, dict) else plan
        self.log_dir = None if log_dir is None else str(log_dir)
        self._writer = None

    def _steps(self) -> int:
        return int(self.model.train_steps.numpy())

    def on_train_begin(self, logs=None):
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_train_batch_end(self, batch, logs=None):
        if self.plan.max_steps is not None and self._steps() >= self.plan.max_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        epsilon = self.plan.epsilon_after(self._steps())
        if logs is not None:
            logs["dp_epsilon"] = epsilon
        if self._writer is not None:
            with self._writer.as_default():
                tf.summary.scalar("dp_epsilon", epsilon, step=epoch + 1)
            self._writer.flush()
