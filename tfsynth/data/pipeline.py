"""tf.data input pipelines: normalize, cache, shuffle, batch, prefetch."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the range every tfsynth model sees."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding and clipping."""
    images = tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 127.5, 0.0, 255.0)
    return tf.cast(tf.round(images), tf.uint8)


def make_pipeline(
    elements: tf.data.Dataset,
    batch_size: int = 64,
    *,
    shuffle: bool = True,
    seed: int = 0,
    cache: bool | str = True,
    drop_remainder: bool = False,
    repeat: bool = False,
    normalize: bool = True,
    shuffle_buffer: int = 10_000,
    map_batch: Callable | None = None,
    augment=None,
) -> tf.data.Dataset:
    """Turns a dataset of example dicts into batched (images, labels).

    The order of operations follows the tf.data performance guide: the
    per-example decode is cached (uint8, 4x smaller than float), shuffling
    comes after the cache so each epoch gets a new order, augmentation,
    normalization and `map_batch` run vectorized on whole batches, and the
    result is prefetched.

    Args:
        elements: a dataset of dicts with "image" (uint8 HWC) and "label".
        batch_size: examples per batch.
        shuffle: shuffle with a seeded buffer, reshuffled every epoch.
        seed: the shuffle seed; the same seed gives the same order.
        cache: True caches in memory, a string caches to that file, False
            does not cache (for sources larger than memory).
        drop_remainder: drop the last partial batch, so that shapes are
            static (needed for XLA and for some distribution strategies).
        repeat: repeat forever.
        normalize: map images to float32 in [-1, 1]; otherwise keep uint8.
        shuffle_buffer: shuffle buffer size.
        map_batch: optional function (images, labels) -> (images, labels)
            applied to each batch after normalization.
        augment: optional augmentation policy (an `AugmentationPolicy`, a
            spec or a preset such as "digits"; see `tfsynth.augment`),
            applied to each uint8 batch; with `normalize` the scaling to
            [-1, 1] runs inside the policy's kernel, in the same pass.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> el = tf.data.Dataset.from_tensor_slices(
    ...     {"image": np.zeros((10, 8, 8, 1), np.uint8), "label": np.arange(10)})
    >>> ds = make_pipeline(el, batch_size=4, drop_remainder=True)
    >>> [int(x.shape[0]) for x, _ in ds]
    [4, 4]
    """
    ds = _examples(elements, cache=cache, shuffle=shuffle, seed=seed, buffer=shuffle_buffer)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = _augmented(ds, augment, seed=seed, normalize=normalize)
    elif normalize:
        ds = ds.map(lambda x, y: (to_unit_range(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if map_batch is not None:
        ds = ds.map(map_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _examples(elements, *, cache: bool | str, shuffle: bool, seed: int, buffer: int):
    """(image, label) pairs, cached before the shuffle so each epoch gets a new order."""
    ds = elements.map(lambda e: (e["image"], e["label"]), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache() if cache is True else ds.cache(str(cache))
    if shuffle:
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return ds


def _augmented(ds: tf.data.Dataset, augment, *, seed: int, normalize: bool) -> tf.data.Dataset:
    """Applies an augmentation policy to each uint8 batch (and, with `normalize`, scaling)."""
    from tfsynth.augment import build_policy  # tfsynth.augment builds on this module

    policy = build_policy(augment, seed=seed)
    # One stateless seed per batch from a seeded random stream, new every
    # epoch (each iteration of the dataset), as in TensorFlow's data
    # augmentation guide. Hashing the pixels instead (what `map_batch`
    # does without a seed) cost an extra pass over every batch
    # (bench/results/design_measurements.md), and repeated the same
    # augmentations every epoch without shuffling.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    policy_seed = tf.constant(policy.seed, tf.int64)

    def augment_batch(batch, s):
        x, y = batch
        return policy.map_batch(x, y, normalize=normalize, seed=tf.stack([policy_seed, s]))

    return tf.data.Dataset.zip(ds, seeds).map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)


def epoch_batches(
    images,
    labels,
    batch_size: int,
    steps_per_epoch: int,
    *,
    seed: int = 0,
    start_step: int = 0,
    stop_step: int,
) -> tf.data.Dataset:
    """Training batches `[start_step, stop_step)` of a stream whose epoch e depends on (seed, e) only.

    Epoch e is `steps_per_epoch` full batches of (images in [-1, 1],
    labels): as many passes over the examples as it needs, pass j in the
    order of a stateless permutation keyed by (seed, e, j), cut into
    batches. So a run resumed at step s (a killed run's checkpoint) starts
    epoch s // steps_per_epoch afresh, skips the batches it had already
    trained on (tf.data's `skip`), and sees batch for batch what an
    uninterrupted run sees, whatever happened to the process in between.
    Unlike a seeded `Dataset.shuffle` that reshuffles every pass, reaching
    step s costs no replay of the steps before it and does not depend on
    TensorFlow's global seed.

    Args:
        images, labels: uint8 NHWC images and int labels, in memory.
        batch_size, steps_per_epoch: the batch and the steps in an epoch.
        seed: the stream's seed.
        start_step, stop_step: the global steps to yield.

    Example:

    >>> import numpy as np
    >>> x, y = np.zeros((10, 4, 4, 1), np.uint8), np.arange(10)
    >>> labels = lambda start: [b.numpy().tolist()
    ...     for _, b in epoch_batches(x, y, 4, 3, seed=1, start_step=start, stop_step=6)]
    >>> full, resumed = labels(0), labels(4)
    >>> len(full), resumed == full[4:], sorted(full[0] + full[1]) == sorted(set(full[0] + full[1]))
    (6, True, True)
    """
    n = len(labels)
    per_epoch = steps_per_epoch * batch_size
    passes = -(-per_epoch // n)
    with tf.device("/cpu:0"):  # tf.data runs on the host; keep the arrays there
        images = tf.constant(images)
        labels = tf.constant(labels, tf.int64)
    seed = tf.constant(seed, tf.int64)

    def epoch(e):
        key = tf.stack([seed, e])

        def one_pass(j):
            k = tf.random.experimental.stateless_fold_in(key, tf.cast(j, tf.int32), alg="philox")
            order = tf.random.experimental.stateless_shuffle(tf.range(n), k, alg="philox")
            return tf.data.Dataset.from_tensor_slices(order)

        examples = tf.data.Dataset.range(passes).flat_map(one_pass)
        return examples.batch(batch_size, drop_remainder=True).take(steps_per_epoch)

    def gather(index):
        return to_unit_range(tf.gather(images, index)), tf.gather(labels, index)

    first, skip = divmod(int(start_step), steps_per_epoch)
    last = -(-int(stop_step) // steps_per_epoch)
    ds = tf.data.Dataset.range(first, last).flat_map(epoch).skip(skip)
    ds = ds.take(max(0, int(stop_step) - int(start_step)))
    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
