"""Poisson-sampled batches with a static shape, for DP-SGD.

Each step every training example joins the batch independently with
probability q = batch_size / n (what the accountant assumes). The batch is
padded to a fixed `physical_batch` rows with weight 0, so the train_step
keeps static shapes; a draw larger than that (rarer than
`physical_batch_size` allows for) keeps a random subset of it, and that
event's probability is paid for in delta (see `physical_batch_size`).

The draws are keyed by a secret key, not by the run's seed: a sample any
reader of summary.json could regenerate would tell them who was in which
batch, and the amplification by sampling would be void.

Example:

>>> import numpy as np
>>> x, y = np.zeros((20, 4, 4, 1), np.uint8), np.arange(20)
>>> ds = poisson_batches(x, y, 0.25, 12, key=7, start_step=0, stop_step=3)
>>> [tuple(b[0].shape) for b in ds][0], all(float(b[2].numpy().sum()) <= 12 for b in ds)
((12, 4, 4, 1), True)
"""

from __future__ import annotations

import math

import tensorflow as tf

# The share of delta set aside for a Poisson draw that overflows the
# physical batch; the accountant gets the rest.
TRUNCATION_SHARE = 0.01


def physical_batch_size(
    num_examples: int, batch_size: int, steps: int, epsilon: float, delta: float
) -> int:
    """Rows per step so that overflowing them costs at most TRUNCATION_SHARE * delta.

    Keeping a subset of an overflowing draw changes the mechanism only on
    that event; if it has probability p per step on every dataset, the run
    is (eps, delta_acc + (1 + e^eps) * steps * p)-DP. So the batch holds the
    binomial quantile with that term at most TRUNCATION_SHARE * delta
    (at most n rows: then nothing can overflow).
    """
    from scipy.stats import binom

    q = batch_size / num_examples
    p_max = TRUNCATION_SHARE * delta / (max(int(steps), 1) * (1.0 + math.exp(min(epsilon, 700))))
    k = int(binom.isf(p_max, num_examples, q))
    while k < num_examples and binom.sf(k, num_examples, q) > p_max:
        k += 1
    return int(min(max(k, batch_size), num_examples))


def poisson_batches(
    images, labels, sampling_rate: float, physical_batch: int, *, key: int, start_step: int,
    stop_step: int,
) -> tf.data.Dataset:  # fmt: skip
    """(images in [-1, 1], labels, weights) for global steps [start_step, stop_step).

    Step s's draw depends only on (key, s), so a resumed run continues the
    stream; weights are 1 for drawn rows, 0 for padding (zero images).
    """
    from tfsynth.data.pipeline import to_unit_range

    n = len(labels)
    with tf.device("/cpu:0"):  # tf.data runs on the host; keep the arrays there
        images = tf.constant(images)
        labels = tf.constant(labels, tf.int64)
    base = tf.constant([int(key) % (2**31), 0], tf.int64)

    def draw(step):
        seed = tf.random.experimental.stateless_fold_in(base, step, alg="philox")
        chosen = tf.where(tf.random.stateless_uniform([n], seed=seed) < sampling_rate)[:, 0]
        chosen = tf.random.experimental.stateless_shuffle(chosen, seed + [0, 1], alg="philox")
        chosen = chosen[:physical_batch]
        m = tf.shape(chosen)[0]
        rows = tf.pad(chosen, [[0, physical_batch - m]])
        weights = tf.pad(tf.ones([m], tf.float32), [[0, physical_batch - m]])
        x = to_unit_range(tf.gather(images, rows)) * weights[:, None, None, None]
        return x, tf.gather(labels, rows) * tf.cast(weights, tf.int64), weights

    steps = tf.data.Dataset.range(int(start_step), int(stop_step))
    return steps.map(draw, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
