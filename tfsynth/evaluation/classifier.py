"""The one fixed classifier recipe used wherever tfsynth needs a classifier.

The domain feature extractor (FID and friends on classifier features), the
utility metrics (TRTR, TSTR, TRTS, D vs D', the low-data curve) and the
label agreement of a conditional generator all train *this* network with
*this* recipe, so their numbers are comparable with each other and across
runs. It is small, because the utility metrics and the search of the mix
train it many times on CPU, and strong enough that a gain from synthetic
data is measured against a baseline worth beating (its accuracy and cost
are in bench/results/design_measurements.md).

Network (any H x W x C with H and W divisible by 4, float32 input in [-1, 1]):
``Conv(w, 3) -> MaxPool -> Conv(2w, 3) -> MaxPool -> Conv(2w, 3) -> Flatten
-> Dropout -> Dense(feature_dim, "features") -> Dropout -> Dense(K, softmax)``,
trained with Adam and a cosine-decayed learning rate over a budget of
optimizer steps, in one compiled loop (`tfsynth.evaluation.train_loop`).
The layer named ``"features"`` is the penultimate embedding used by
`tfsynth.evaluation.features`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from tfsynth.data.dataset import ImageDataset, check_compatible
from tfsynth.errors import ConfigError, DataError
from tfsynth.evaluation.train_loop import TrainLoop, batch_order

FEATURE_LAYER = "features"
DROPOUT = 0.3
# recipe key -> compiled model, while a `reuse_compiled()` block is open.
_COMPILED: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "tfsynth_compiled_classifiers", default=None
)


def build_classifier(
    image_shape: Sequence[int],
    num_classes: int,
    width: int = 16,
    feature_dim: int = 128,
    seed: int = 0,
) -> keras.Model:
    """Builds the fixed small CNN (float32 input in [-1, 1], softmax output).

    Args:
        image_shape: (H, W, C) of the images.
        num_classes: number of classes K (>= 2).
        width: filters of the first convolution; the others use 2 * width.
        feature_dim: size of the penultimate "features" layer.
        seed: seeds the weight initializers, so the same seed gives the
            same initial network.

    Example:

    >>> m = build_classifier((28, 28, 1), 10, width=8)
    >>> m.output_shape, m.get_layer("features").output.shape
    ((None, 10), (None, 128))
    """
    if len(image_shape) != 3:
        raise ConfigError(f"image_shape must be (H, W, C), got {tuple(image_shape)}")
    if num_classes < 2:
        raise ConfigError(f"num_classes must be >= 2 to train a classifier, got {num_classes}")
    if width < 1 or feature_dim < 1:
        raise ConfigError(f"width and feature_dim must be >= 1, got {width} and {feature_dim}")

    def init(i):
        return keras.initializers.GlorotUniform(seed=seed * 1000 + i)

    inputs = keras.Input(tuple(int(d) for d in image_shape), name="image")
    x = inputs
    for i, filters in enumerate((width, 2 * width, 2 * width)):
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            kernel_initializer=init(i),
            name=f"conv{i}",
        )(x)
        if i < 2:
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    # Flatten keeps where a stroke is; global average pooling loses it.
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(DROPOUT, seed=seed * 1000 + 20, name="dropout0")(x)
    x = keras.layers.Dense(
        feature_dim, activation="relu", kernel_initializer=init(10), name=FEATURE_LAYER
    )(x)
    x = keras.layers.Dropout(DROPOUT, seed=seed * 1000 + 21, name="dropout1")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", kernel_initializer=init(11), name="probs"
    )(x)
    return keras.Model(inputs, outputs, name="tfsynth_classifier")


def _targets(dataset: ImageDataset) -> np.ndarray:
    """One-hot labels, or the dataset's soft labels (MixUp/CutMix) when present."""
    labels = dataset.labels
    k = dataset.num_classes
    soft = dataset.extras.get("soft_label") if not dataset.is_streamed else None
    if soft is not None:
        soft = np.asarray(soft, np.float32)
        if soft.shape != (len(labels), k):
            raise DataError(
                f"{dataset.name}: soft_label has shape {soft.shape}, expected ({len(labels)}, {k})"
            )
        return soft
    return np.eye(k, dtype=np.float32)[labels]


def _images_input(images: np.ndarray, batch_size: int):
    """Batches of uint8 images scaled to [-1, 1], in order (for prediction)."""
    import tensorflow as tf

    from tfsynth.data.pipeline import to_unit_range

    ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    return ds.map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


DEFAULT_EPOCHS = 8


def step_budget(num_examples: int, *, epochs: int, batch_size: int, min_steps: int = 0) -> int:
    """Optimizer steps for `epochs` passes over `num_examples`, at least `min_steps`.

    The utility comparisons give D and every D' the budget of D, so a larger
    D' wins by what its examples teach, not by more training.

    Example:

    >>> step_budget(7000, epochs=8, batch_size=64), step_budget(100, epochs=8, batch_size=64, min_steps=300)
    (880, 300)
    """
    return max(int(min_steps), int(epochs) * -(-int(num_examples) // int(batch_size)))


def train_classifier(dataset: ImageDataset, *, seed: int = 0, **recipe) -> keras.Model:
    """Trains the fixed classifier on `dataset` and returns the Keras model.

    The recipe is fixed on purpose (Adam with a cosine-decayed learning
    rate, cross-entropy on one-hot or soft labels, seeded batch order,
    dropout and initialization); only its size knobs are arguments.

    Args:
        dataset: labelled images (uint8); a ``soft_label`` extra column
            (N, K) is used as the target when present.
        seed: seeds initialization, dropout and the batch order.
        **recipe: `train_classifiers`' size knobs (epochs, batch_size,
            width, feature_dim, learning_rate, num_classes, min_steps, steps).

    Example:

    >>> import numpy as np
    >>> ds = ImageDataset(np.zeros((8, 16, 16, 1), np.uint8), np.arange(8) % 2)
    >>> model = train_classifier(ds, epochs=1, batch_size=4, width=4)
    >>> predict_labels(model, ds.images).shape
    (8,)
    """
    return train_classifiers(dataset, seeds=[seed], **recipe)[0]


def train_classifiers(
    datasets: ImageDataset | Sequence[ImageDataset],
    *,
    seeds: Sequence[int],
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 64,
    width: int = 16,
    feature_dim: int = 128,
    learning_rate: float = 2e-3,
    num_classes: int | None = None,
    min_steps: int = 0,
    steps: int | None = None,
) -> list[keras.Model]:
    """One fixed classifier per seed, trained side by side (`tfsynth.evaluation.train_loop`).

    Model i trains on `datasets` (or ``datasets[i]``) with ``seeds[i]``,
    exactly as it would alone; all get one step budget.

    Args:
        datasets: labelled images (uint8), one dataset for all seeds or one
            per seed; a ``soft_label`` extra column (N, K) is used as the
            target when present.
        seeds: one seed per model: initialization, dropout, batch order.
        epochs: passes over the (first) dataset; sets the step budget, see
            `step_budget`.
        batch_size: examples per step.
        width, feature_dim: network size, see `build_classifier`.
        learning_rate: Adam's initial learning rate.
        num_classes: defaults to the first dataset's ``num_classes``.
        min_steps: at least this many optimizer steps, so that a 100-image
            set is not compared undertrained.
        steps: an explicit step budget instead of `epochs` and `min_steps`
            (the same budget for D and D' in the utility comparisons).

    Example:

    >>> import numpy as np
    >>> ds = ImageDataset(np.zeros((8, 16, 16, 1), np.uint8), np.arange(8) % 2)
    >>> [m.name for m in train_classifiers(ds, seeds=[0, 1], epochs=1, batch_size=4, width=4)]
    ['tfsynth_classifier', 'tfsynth_classifier']
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if steps is not None and steps < 1:
        raise ConfigError(f"steps: expected a positive step budget, got {steps}")
    seeds = [int(s) for s in seeds]
    many = not isinstance(datasets, ImageDataset)
    datasets = list(datasets) if many else [datasets] * len(seeds)
    if not seeds or len(datasets) != len(seeds):
        raise ConfigError(f"expected one seed per dataset, got {len(seeds)} for {len(datasets)}")
    for ds in datasets:
        ds.require_labels("training a classifier")
    check_compatible(*datasets)
    num_classes = num_classes or datasets[0].num_classes
    if datasets[0].num_classes != num_classes:
        raise DataError(
            f"{datasets[0].name}: has {datasets[0].num_classes} classes, expected {num_classes}"
        )
    if steps is None:
        steps = step_budget(
            len(datasets[0]), epochs=epochs, batch_size=batch_size, min_steps=min_steps
        )
    recipe = (tuple(datasets[0].shape), num_classes, width, feature_dim, learning_rate, steps)
    loop = _fresh_loop(recipe, seeds)
    loop.fit(
        [
            (ds.images, _targets(ds), batch_order(len(ds), batch_size, steps, seed))
            for ds, seed in zip(datasets, seeds)
        ]
    )
    return list(loop.models)


@contextlib.contextmanager
def reuse_compiled() -> Iterator[None]:
    """Inside this block `train_classifier(s)` reuses one traced loop per recipe.

    Each training then starts from the state fresh models of its seeds
    would have (weights, dropout seeds, zeroed optimizer slots and step
    counts), so its result is the same, but the training loop is traced
    once per recipe (and number of models) instead of once per training.
    A model returned inside the block is only valid until the next
    training with the same recipe: score it before training the next one.

    Example:

    >>> import numpy as np
    >>> ds = ImageDataset(np.zeros((8, 16, 16, 1), np.uint8), np.arange(8) % 2)
    >>> with reuse_compiled():
    ...     a = train_classifier(ds, epochs=1, batch_size=4, width=4, seed=0)
    ...     b = train_classifier(ds, epochs=1, batch_size=4, width=4, seed=1)
    >>> a is b
    True
    """
    token = _COMPILED.set({})
    try:
        yield
    finally:
        _COMPILED.reset(token)


def _fresh_loop(recipe: tuple, seeds: Sequence[int]) -> TrainLoop:
    """A `TrainLoop` whose models are in the initial state of `seeds` (see `reuse_compiled`)."""
    shape, num_classes, width, feature_dim, learning_rate, steps = recipe
    fresh = [build_classifier(shape, num_classes, width, feature_dim, seed=s) for s in seeds]
    cache = _COMPILED.get()
    # decay_steps is a constant of the traced loop: the budget is part of the key.
    key = (*recipe, len(seeds))
    loop = None if cache is None else cache.get(key)
    if loop is None:
        loop = TrainLoop(fresh, learning_rate=learning_rate, steps=steps)
        if cache is not None:
            cache[key] = loop
        return loop
    loop.reset(fresh)
    return loop


def predict_proba(model: keras.Model, images_uint8, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, K) for uint8 NHWC images."""
    images = np.asarray(images_uint8)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8:
        raise DataError(f"images must be uint8 NHWC, got dtype {images.dtype}")
    return np.asarray(model.predict(_images_input(images, batch_size), verbose=0))


def predict_labels(model: keras.Model, images_uint8, *, batch_size: int = 256) -> np.ndarray:
    """Predicted class indices (N,) int64 for uint8 NHWC images.

    Example:

    >>> m = build_classifier((16, 16, 1), 3, width=4)
    >>> predict_labels(m, np.zeros((5, 16, 16, 1), np.uint8)).dtype
    dtype('int64')
    """
    return predict_proba(model, images_uint8, batch_size=batch_size).argmax(axis=1).astype(np.int64)


def accuracy(model: keras.Model, dataset: ImageDataset, *, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` on a labelled dataset (hard labels)."""
    pred = predict_labels(model, dataset.images, batch_size=batch_size)
    return float(np.mean(pred == dataset.labels))
