"""The self-supervised encoder, its projection head and the NT-Xent loss.

SimCLR (Chen et al., 2020): two augmented views of each image go through
an encoder f and a projection head g; the NT-Xent loss pulls the two
projections of one image together and pushes those of the other 2N - 2
views in the batch away. The features used afterwards (k-NN, linear
probe, FID) are f's output, before the head.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tfsynth.errors import ConfigError

FEATURE_LAYER = "features"


def build_encoder(
    image_shape: Sequence[int], *, width: int = 16, feature_dim: int = 128, seed: int = 0
) -> keras.Model:
    """A small convolutional encoder: images in [-1, 1] -> `feature_dim` features.

    Two stages of (3x3 conv, 3x3 conv with stride 2) with batch norm and
    ReLU, widths `width` and `2 * width`, then a 3x3 conv at `4 * width`,
    flattened, and a Dense layer named "features". Works for any H x W x C
    (the strided convolutions pad).

    Example:

    >>> build_encoder((16, 16, 1), width=4, feature_dim=8).output_shape
    (None, 8)
    """
    if len(image_shape) != 3:
        raise ConfigError(f"image_shape must be (H, W, C), got {tuple(image_shape)}")
    if width < 1 or feature_dim < 1:
        raise ConfigError(f"width and feature_dim must be >= 1, got {width} and {feature_dim}")
    inputs = keras.Input(tuple(int(d) for d in image_shape), name="image")
    x = inputs
    plan = [(width, 1), (width, 2), (2 * width, 1), (2 * width, 2), (4 * width, 1)]
    for i, (filters, stride) in enumerate(plan):
        x = keras.layers.Conv2D(
            filters,
            3,
            strides=stride,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed=seed * 100 + i),
            name=f"conv{i}",
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    # Flatten keeps where a stroke is (global average pooling loses it and
    # gave k-NN features worse than raw pixels on digits).
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(
        feature_dim,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + 50),
        name=FEATURE_LAYER,
    )(x)
    return keras.Model(inputs, outputs, name="ssl_encoder")


def build_projection_head(
    feature_dim: int, *, projection_dim: int = 64, seed: int = 0
) -> keras.Model:
    """The SimCLR projection head g: features -> ReLU MLP -> `projection_dim`.

    Example:

    >>> build_projection_head(8, projection_dim=4).output_shape
    (None, 4)
    """
    inputs = keras.Input((int(feature_dim),), name="features")
    x = keras.layers.ReLU(name="relu")(inputs)
    x = keras.layers.Dense(
        feature_dim,
        activation="relu",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + 60),
        name="hidden",
    )(x)
    outputs = keras.layers.Dense(
        projection_dim,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + 61),
        name="projection",
    )(x)
    return keras.Model(inputs, outputs, name="ssl_projection_head")


def nt_xent_loss(z1: tf.Tensor, z2: tf.Tensor, temperature: float = 0.2) -> tf.Tensor:
    """NT-Xent (normalized temperature-scaled cross-entropy), averaged over the 2N views.

    `z1[i]` and `z2[i]` are the projections of two views of image i. Each
    of the 2N views is classified among the other 2N - 1 by cosine
    similarity / `temperature`, its partner view being the right answer.

    Example:

    >>> import numpy as np
    >>> z = np.eye(4, dtype="float32")
    >>> round(float(nt_xent_loss(z, z, temperature=1.0)), 4)  # partners identical, others orthogonal
    1.1654
    """
    z1 = tf.math.l2_normalize(tf.cast(z1, tf.float32), axis=1)
    z2 = tf.math.l2_normalize(tf.cast(z2, tf.float32), axis=1)
    z = tf.concat([z1, z2], axis=0)
    n = tf.shape(z1)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    # A view is never its own candidate: a large negative logit on the diagonal.
    logits = logits - 1e9 * tf.eye(2 * n)
    targets = tf.concat([tf.range(n, 2 * n), tf.range(n)], axis=0)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
    return tf.reduce_mean(losses)
