"""The one fixed classifier recipe used wherever tfsynth needs a classifier.

The domain feature extractor (FID and friends on classifier features), the
utility metrics (TRTR, TSTR, TRTS, D vs D', the low-data curve) and the
label agreement of a conditional generator all train *this* network with
*this* recipe, so their numbers are comparable with each other and across
runs. It is deliberately small: the utility metrics train it dozens of
times, on CPU, so one training on 4,000 MNIST digits takes seconds.

Network (any H x W x C, float32 input in [-1, 1]):
``Conv(w, 3, stride 2) -> Conv(2w, 3, stride 2) -> Conv(2w, 3) ->
Flatten -> Dense(feature_dim, "features") -> Dense(K, softmax)``.
The layer named ``"features"`` is the penultimate embedding used by
`tfsynth.evaluation.features`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from tfsynth.data.dataset import ImageDataset
from tfsynth.errors import ConfigError, DataError

FEATURE_LAYER = "features"


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
    for i, (filters, stride) in enumerate(((width, 2), (2 * width, 2), (2 * width, 1))):
        x = keras.layers.Conv2D(
            filters,
            3,
            strides=stride,
            padding="same",
            activation="relu",
            kernel_initializer=init(i),
            name=f"conv{i}",
        )(x)
    # Flatten keeps where a stroke is; global average pooling loses it and
    # costs about 10 points of MNIST accuracy at this size.
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(
        feature_dim, activation="relu", kernel_initializer=init(10), name=FEATURE_LAYER
    )(x)
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


def _input(images: np.ndarray, targets: np.ndarray | None, batch_size: int, seed: int | None):
    import tensorflow as tf

    from tfsynth.data.pipeline import make_pipeline

    cols = {"image": images, "label": targets if targets is not None else np.zeros(len(images))}
    ds = make_pipeline(
        tf.data.Dataset.from_tensor_slices(cols),
        batch_size=batch_size,
        shuffle=seed is not None,
        seed=seed or 0,
        cache=False,  # the arrays are already in memory
        shuffle_buffer=len(images),
    )
    return ds if targets is not None else ds.map(lambda x, _: x)


def train_classifier(
    dataset: ImageDataset,
    *,
    epochs: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    validation: ImageDataset | None = None,
    width: int = 16,
    feature_dim: int = 128,
    learning_rate: float = 2e-3,
    num_classes: int | None = None,
    min_steps: int = 0,
    verbose: int = 0,
) -> keras.Model:
    """Trains the fixed classifier on `dataset` and returns the Keras model.

    The recipe is fixed on purpose (Adam, cross-entropy on one-hot or soft
    labels, seeded shuffling and initialization); only its size knobs are
    arguments. The returned model keeps its `history` attribute
    (`model.history.history` has the loss and accuracy per epoch).

    Args:
        dataset: labelled images (uint8); a ``soft_label`` extra column
            (N, K) is used as the target when present.
        epochs: passes over the data.
        seed: seeds initialization and shuffling.
        batch_size: examples per step.
        validation: optional dataset evaluated after each epoch.
        width, feature_dim: network size, see `build_classifier`.
        learning_rate: Adam learning rate.
        num_classes: defaults to ``dataset.num_classes``.
        min_steps: train for more epochs when `epochs` passes over a small
            dataset would take fewer optimizer steps than this, so that a
            100-image subset is not compared undertrained (low-data curve).
        verbose: Keras fit verbosity.

    Example:

    >>> import numpy as np
    >>> ds = ImageDataset(np.zeros((8, 16, 16, 1), np.uint8), np.arange(8) % 2)
    >>> model = train_classifier(ds, epochs=1, batch_size=4, width=4)
    >>> predict_labels(model, ds.images).shape
    (8,)
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    num_classes = num_classes or dataset.num_classes
    if dataset.num_classes != num_classes:
        raise DataError(
            f"{dataset.name}: has {dataset.num_classes} classes, expected {num_classes}"
        )
    model = build_classifier(dataset.shape, num_classes, width, feature_dim, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    train = _input(dataset.images, _targets(dataset), batch_size, seed)
    val = None
    if validation is not None:
        _check_compatible(validation, dataset.shape, num_classes)
        val = _input(validation.images, _targets(validation), 256, None)
    steps_per_epoch = -(-len(dataset) // batch_size)
    epochs = max(epochs, -(-min_steps // steps_per_epoch))
    model.fit(train, epochs=epochs, validation_data=val, verbose=verbose, shuffle=False)
    return model


def _check_compatible(dataset: ImageDataset, image_shape, num_classes: int) -> None:
    if tuple(dataset.shape) != tuple(image_shape):
        raise DataError(
            f"{dataset.name}: images are {dataset.shape}, expected {tuple(image_shape)}"
        )
    if dataset.num_classes != num_classes:
        raise DataError(
            f"{dataset.name}: has {dataset.num_classes} classes, expected {num_classes}"
        )


def predict_proba(model: keras.Model, images_uint8, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, K) for uint8 NHWC images."""
    images = np.asarray(images_uint8)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8:
        raise DataError(f"images must be uint8 NHWC, got dtype {images.dtype}")
    return np.asarray(model.predict(_input(images, None, batch_size, None), verbose=0))


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
