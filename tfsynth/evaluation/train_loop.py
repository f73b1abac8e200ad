"""Classifiers trained side by side in one compiled loop, the data in memory.

Keras `fit` runs one traced step per optimizer step, called from Python and
fed by tf.data; for the small fixed classifier that per-step overhead is a
large share of a training (bench/results/classifier_loop.json). A
`TrainLoop` instead runs a chunk of steps inside one `tf.function` for
several models at once (one per seed or per dataset): each step gathers
every model's batch from its images in memory by a precomputed order and
applies that model's own Adam update, so each model trains exactly as it
would alone, while independent models give the two cores work to share.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfsynth.data.pipeline import to_unit_range

# Steps per call of the compiled loop: long enough that Python is not in the
# inner loop, short enough that Ctrl-C is answered within seconds.
CHUNK_STEPS = 128


def batch_order(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch_size) example indices: seeded passes over range(n), each a permutation.

    Every pass shows each example once before any is repeated; a batch may
    span two passes, so every batch is full.

    Example:

    >>> order = batch_order(10, 4, 5, seed=0)
    >>> order.shape, sorted(order.ravel()[:10].tolist()) == list(range(10))
    ((5, 4), True)
    """
    rng = np.random.default_rng(seed)
    passes = -(-steps * batch_size // n)
    flat = np.concatenate([rng.permutation(n) for _ in range(passes)])
    return flat[: steps * batch_size].reshape(steps, batch_size).astype(np.int32)


class TrainLoop:
    """Trains `models` together with categorical cross-entropy and Adam on a cosine decay.

    Each model has its own optimizer and its own (images, targets, order);
    `reset` puts models and optimizers back to given initial weights, so one
    traced loop serves many trainings of the same recipe.

    Example:

    >>> from tfsynth.evaluation.classifier import build_classifier
    >>> models = [build_classifier((8, 8, 1), 2, width=2, seed=s) for s in (0, 1)]
    >>> loop = TrainLoop(models, learning_rate=1e-2, steps=4)
    >>> x = np.zeros((6, 8, 8, 1), np.uint8)
    >>> y = np.eye(2, dtype=np.float32)[np.arange(6) % 2]
    >>> losses = loop.fit([(x, y, batch_order(6, 2, 4, s)) for s in (0, 1)])
    >>> losses.shape, int(loop.optimizers[1].iterations.numpy())
    ((2,), 4)
    """

    def __init__(self, models: Sequence[keras.Model], *, learning_rate: float, steps: int):
        self.models = list(models)
        self.steps = int(steps)
        self.optimizers = []
        for m in self.models:
            opt = keras.optimizers.Adam(
                keras.optimizers.schedules.CosineDecay(learning_rate, self.steps)
            )
            opt.build(m.trainable_variables)  # slots exist before the loop is traced
            self.optimizers.append(opt)
        self._loss = keras.losses.CategoricalCrossentropy()
        self._run = tf.function(self._steps, reduce_retracing=True)

    def reset(self, initial: Sequence[keras.Model]) -> None:
        """Weights and dropout seed states from `initial`; optimizer slots and step counts zeroed."""
        for model, fresh in zip(self.models, initial):
            for target, source in zip(model.variables, fresh.variables):
                target.assign(source)
        for opt in self.optimizers:
            for v in opt.variables:
                v.assign(tf.zeros_like(v))

    def fit(self, data: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
        """Runs all `steps`; `data[i]` = (uint8 images, float targets, `batch_order`) of model i.

        Returns the last step's loss of each model.
        """
        if len(data) != len(self.models):
            raise ValueError(f"expected data for {len(self.models)} models, got {len(data)}")
        with tf.device("/cpu:0"):  # gathered from host memory, as tf.data would
            tensors = tuple(
                (tf.constant(x), tf.constant(y, tf.float32), tf.constant(order, tf.int32))
                for x, y, order in data
            )
        losses = None
        for start in range(0, self.steps, CHUNK_STEPS):
            count = min(CHUNK_STEPS, self.steps - start)
            losses = self._run(tensors, tf.constant(start), tf.constant(count))
        return np.asarray(losses)

    def _steps(self, tensors, start, count):
        losses = tf.zeros([len(self.models)])
        for s in tf.range(start, start + count):
            out = []
            for model, opt, (images, targets, order) in zip(self.models, self.optimizers, tensors):
                index = order[s]
                x = to_unit_range(tf.gather(images, index))
                y = tf.gather(targets, index)
                with tf.GradientTape() as tape:
                    loss = self._loss(y, tf.cast(model(x, training=True), tf.float32))
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply(grads, model.trainable_variables)
                out.append(loss)
            losses = tf.stack(out)
        return losses
