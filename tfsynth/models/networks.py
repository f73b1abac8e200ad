"""Functional-API builders: generator, discriminator, encoder and decoder.

All builders are sized from (image shape, number of classes, width) and work
for any H x W x C whose sides share enough factors of two (16x16, 28x28,
32x32, 64x64, grey or colour): the generator starts from a small grid of at
least 4 pixels per side and doubles it with strided transposed convolutions;
the discriminator halves it back.

Class conditioning follows common practice: the generator concatenates a
learned label embedding to the noise; the discriminator is a projection
discriminator (Miyato & Koyama, 2018) that adds <embed(y), features(x)> to
its unconditional logit. Its features come from a hidden dense layer on top
of the convolutions (see `build_discriminator`'s `head_units`).

Example:

>>> g = build_generator((28, 28, 1), latent_dim=16, num_classes=10, width=8)
>>> d = build_discriminator((28, 28, 1), num_classes=10, width=8)
>>> import numpy as np
>>> x = g([np.zeros((2, 16), "float32"), np.array([1, 2])])
>>> tuple(x.shape), tuple(d([x.numpy(), np.array([1, 2])]).shape)
((2, 28, 28, 1), (2, 1))
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from tfsynth.errors import ConfigError

MAX_RESAMPLES = 4


def num_resamples(image_shape: Sequence[int]) -> int:
    """How many times the networks halve/double the image side.

    The largest k <= 4 such that both sides divide by 2**k and stay >= 4
    pixels: 16 -> 2 (4x4 start), 28 -> 2 (7x7), 32 -> 3, 64 -> 4.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    k = 0
    while (
        k < MAX_RESAMPLES
        and h % 2 ** (k + 1) == 0
        and w % 2 ** (k + 1) == 0
        and min(h, w) // 2 ** (k + 1) >= 4
    ):
        k += 1
    return k


def _check(image_shape, width, latent_dim=None):
    if len(image_shape) != 3 or min(image_shape) <= 0:
        raise ConfigError(f"image_shape: expected (H, W, C) positive integers, got {image_shape}")
    if min(image_shape[:2]) < 8:
        raise ConfigError(f"image_shape: images must be at least 8x8, got {image_shape}")
    if width < 1:
        raise ConfigError(f"width: must be a positive integer, got {width}")
    if latent_dim is not None and latent_dim < 1:
        raise ConfigError(f"latent_dim: must be a positive integer, got {latent_dim}")


def _norm(kind: str | None, name: str):
    if kind in (None, "none"):
        return None
    if kind == "batch":
        return layers.BatchNormalization(name=name)
    if kind == "layer":
        return layers.LayerNormalization(name=name)
    raise ConfigError(f"norm: expected 'batch', 'layer' or 'none', got {kind!r}")


@keras.saving.register_keras_serializable(package="tfsynth")
class MinibatchStdDev(layers.Layer):
    """Appends the batch's mean feature standard deviation as one extra channel.

    From ProGAN (Karras et al., 2018): a discriminator that sees how varied a
    batch is can penalize a generator that collapses to a few modes. Real and
    generated batches go through the discriminator separately, so the
    statistic is computed per kind.
    """

    def call(self, x):
        x32 = keras.ops.cast(x, "float32")
        std = keras.ops.sqrt(keras.ops.var(x32, axis=0) + 1e-8)
        stat = keras.ops.mean(std)
        shape = keras.ops.shape(x)
        extra = keras.ops.broadcast_to(
            keras.ops.cast(stat, x.dtype), (shape[0], shape[1], shape[2], 1)
        )
        return keras.ops.concatenate([x, extra], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


def build_generator(
    image_shape: Sequence[int],
    latent_dim: int = 64,
    num_classes: int = 0,
    width: int = 32,
    norm: str | None = "batch",
    name: str = "generator",
) -> keras.Model:
    """A DCGAN-style generator: noise (and labels) -> images in [-1, 1].

    Args:
        image_shape: output (H, W, C).
        latent_dim: noise dimension.
        num_classes: > 0 adds an integer label input, embedded and
            concatenated to the noise.
        width: channels of the last hidden block; earlier blocks double it.
        norm: "batch" (default), "layer" or "none" after each hidden layer.
        name: model name.

    Returns:
        A functional model taking `noise` (or `[noise, labels]`) and
        returning float32 images (the last activation stays float32 under
        mixed precision).
    """
    _check(image_shape, width, latent_dim)
    h, w, c = (int(d) for d in image_shape)
    k = num_resamples(image_shape)
    h0, w0 = h // 2**k, w // 2**k
    noise = layers.Input((latent_dim,), name="noise")
    inputs = [noise]
    x = noise
    if num_classes:
        labels = layers.Input((), dtype="int32", name="labels")
        inputs.append(labels)
        emb = layers.Embedding(num_classes, latent_dim, name="label_embedding")(labels)
        x = layers.Concatenate(name="noise_and_label")([noise, emb])
    ch = width * 2**k
    x = layers.Dense(h0 * w0 * ch, use_bias=norm in (None, "none"), name="project")(x)
    x = layers.Reshape((h0, w0, ch), name="to_grid")(x)
    if (n := _norm(norm, "project_norm")) is not None:
        x = n(x)
    x = layers.ReLU(name="project_relu")(x)
    for i in range(k):
        ch //= 2
        x = layers.Conv2DTranspose(
            ch, 4, strides=2, padding="same", use_bias=norm in (None, "none"), name=f"up{i}"
        )(x)
        if (n := _norm(norm, f"up{i}_norm")) is not None:
            x = n(x)
        x = layers.ReLU(name=f"up{i}_relu")(x)
    x = layers.Conv2D(c, 3, padding="same", name="to_image")(x)
    out = layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(inputs if num_classes else noise, out, name=name)


def build_discriminator(
    image_shape: Sequence[int],
    num_classes: int = 0,
    width: int = 32,
    norm: str | None = "none",
    dropout: float = 0.0,
    minibatch_std: bool = False,
    head_units: int | None = None,
    name: str = "discriminator",
) -> keras.Model:
    """A strided-conv discriminator (critic), optionally with a projection head.

    Args:
        image_shape: input (H, W, C).
        num_classes: > 0 adds an integer label input and the projection
            term <embedding(y), features(x)> to the logit.
        width: channels of the first block; later blocks double it.
        norm: "none" (default; required for WGAN-GP and R1), "layer" or "batch".
        dropout: dropout rate after each block (0 disables).
        minibatch_std: append the batch standard deviation as a feature
            (`MinibatchStdDev`, off by default: on the 20-epoch cgan run it
            lowered label agreement; bench/results/design_measurements.md).
        head_units: width of the hidden Dense + LeakyReLU layer between the
            convolutions and the logit/projection head (default `8 * width`;
            0 puts the head directly on the flattened convolution features).
            Why it is there: with the head directly on two strided
            convolutions, the logit and the projection are nearly linear in
            the image, so the best a generator can do against them is to
            match each class's mean feature vector, i.e. to draw one
            prototype per class. That is the intra-class mode collapse the
            20-epoch cgan run showed; with the hidden layer it stays diverse
            (bench/results/cgan_label_agreement.json; the run without it is
            in bench/results/design_measurements.md).
        name: model name.

    Returns:
        A functional model taking `images` (or `[images, labels]`) and
        returning float32 logits of shape (batch, 1).
    """
    _check(image_shape, width)
    head_units = 8 * width if head_units is None else int(head_units)
    if head_units < 0:
        raise ConfigError(f"head_units: must be >= 0, got {head_units}")
    k = max(1, num_resamples(image_shape))
    images = layers.Input(tuple(int(d) for d in image_shape), name="images")
    x = images
    ch = width
    for i in range(k):
        x = layers.Conv2D(ch, 4, strides=2, padding="same", name=f"down{i}")(x)
        if i > 0 and (n := _norm(norm, f"down{i}_norm")) is not None:
            x = n(x)
        x = layers.LeakyReLU(0.2, name=f"down{i}_lrelu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"down{i}_dropout")(x)
        ch *= 2
    if minibatch_std:
        x = MinibatchStdDev(name="minibatch_std")(x)
    features = layers.Flatten(name="flat_features")(x)
    if head_units:
        features = layers.Dense(head_units, name="head")(features)
        features = layers.LeakyReLU(0.2, name="features")(features)
    logit = layers.Dense(1, dtype="float32", name="logit")(features)
    if not num_classes:
        return keras.Model(images, logit, name=name)
    labels = layers.Input((), dtype="int32", name="labels")
    emb = layers.Embedding(num_classes, int(features.shape[-1]), name="class_projection")(labels)
    proj = layers.Dot(axes=1, dtype="float32", name="projection")([features, emb])
    logit = layers.Add(dtype="float32", name="conditional_logit")([logit, proj])
    return keras.Model([images, labels], logit, name=name)


def build_encoder(
    image_shape: Sequence[int],
    latent_dim: int = 16,
    num_classes: int = 0,
    width: int = 32,
    name: str = "encoder",
) -> keras.Model:
    """A VAE encoder: images (and labels) -> (z_mean, z_log_var)."""
    _check(image_shape, width, latent_dim)
    k = max(1, num_resamples(image_shape))
    images = layers.Input(tuple(int(d) for d in image_shape), name="images")
    x = images
    ch = width
    for i in range(k):
        x = layers.Conv2D(ch, 4, strides=2, padding="same", activation="relu", name=f"down{i}")(x)
        ch *= 2
    x = layers.Flatten(name="features")(x)
    inputs = images
    if num_classes:
        labels = layers.Input((), dtype="int32", name="labels")
        inputs = [images, labels]
        emb = layers.Embedding(num_classes, latent_dim, name="label_embedding")(labels)
        x = layers.Concatenate(name="features_and_label")([x, emb])
    x = layers.Dense(max(2 * latent_dim, 64), activation="relu", name="hidden")(x)
    z_mean = layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)
    return keras.Model(inputs, [z_mean, z_log_var], name=name)


def build_decoder(
    image_shape: Sequence[int],
    latent_dim: int = 16,
    num_classes: int = 0,
    width: int = 32,
    name: str = "decoder",
) -> keras.Model:
    """A VAE decoder: the generator architecture without normalization."""
    return build_generator(image_shape, latent_dim, num_classes, width, norm="none", name=name)
