"""A small functional U-Net for diffusion: (noisy images, time, labels) -> prediction.

The layout follows DDPM (Ho et al., 2020) at a size that fits 16x16 to
64x64 images: residual blocks with group normalization and a time (and
label) embedding added inside each block, skip connections between the
halving and the doubling paths, and self-attention at the lowest
resolution. The label embedding has `num_classes + 1` rows: the last one
(`num_classes`) means "no label", so one network serves both the
conditional and the unconditional score that classifier-free guidance
(Ho & Salimans, 2022) mixes.

Example:

>>> import numpy as np
>>> net = build_unet((16, 16, 1), num_classes=3, width=4)
>>> x = np.zeros((2, 16, 16, 1), "float32")
>>> tuple(net([x, np.array([0.5, 0.9], "float32"), np.array([0, 3])]).shape)
(2, 16, 16, 1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers

from tfsynth.errors import ConfigError

MAX_LEVELS = 3
MIN_LEVELS = 2  # by default; fewer halvings leave too small a receptive field
MIN_SIDE = 4  # the lowest resolution keeps at least 4 pixels per side


@keras.saving.register_keras_serializable(package="tfsynth")
class SinusoidalEmbedding(layers.Layer):
    """Transformer-style sin/cos features of a scalar per example (the diffusion time).

    `t` in [0, 1] is scaled by 1000 (the DDPM step count) so the frequencies
    span the usual range 1 .. 1/10000.
    """

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        if dim < 2 or dim % 2:
            raise ConfigError(f"dim: the time embedding needs an even size >= 2, got {dim}")
        self.dim = int(dim)

    def call(self, t):
        half = self.dim // 2
        freqs = keras.ops.exp(
            -math.log(10000.0) * keras.ops.arange(half, dtype="float32") / max(half - 1, 1)
        )
        t = keras.ops.cast(keras.ops.reshape(t, (-1, 1)), "float32") * 1000.0
        angles = t * freqs[None, :]
        out = keras.ops.concatenate([keras.ops.sin(angles), keras.ops.cos(angles)], axis=-1)
        return keras.ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


def groups_for(channels: int, max_groups: int = 8) -> int:
    """The largest group count <= max_groups that divides `channels`."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def unet_levels(image_shape: Sequence[int], levels: int | None = None) -> int:
    """How many times the U-Net halves the image (checked, one-line errors).

    Default: as many as both sides allow, up to 3, keeping >= 4 pixels per
    side (16 -> 2, 28 -> 2, 32 -> 3, 64 -> 3); at least 2 are needed, so
    both sides must be multiples of 4 and >= 16 (pass `levels=1` to allow
    a single halving).
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    if levels is not None:
        if levels < 1:
            raise ConfigError(f"levels: must be >= 1, got {levels}")
        for side in (h, w):
            if side % 2**levels or side // 2**levels < 2:
                raise ConfigError(
                    f"image_shape: side {side} cannot be halved {levels} times for the U-Net "
                    f"(needs a multiple of {2**levels}); got {tuple(image_shape)}"
                )
        return int(levels)
    k = 0
    while (
        k < MAX_LEVELS
        and h % 2 ** (k + 1) == 0
        and w % 2 ** (k + 1) == 0
        and min(h, w) // 2 ** (k + 1) >= MIN_SIDE
    ):
        k += 1
    if k < MIN_LEVELS:
        raise ConfigError(
            f"image_shape: sides {h}x{w} cannot be halved {MIN_LEVELS} times for the U-Net "
            f"(both must be multiples of 4 and >= 16); got {tuple(image_shape)}"
        )
    return k


def _res_block(x, emb, channels: int, name: str):
    """GroupNorm-swish-conv twice, the embedding added in between, a residual skip."""
    h = layers.GroupNormalization(groups_for(int(x.shape[-1])), name=f"{name}_norm1")(x)
    h = layers.Activation("swish", name=f"{name}_act1")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv1")(h)
    e = layers.Dense(channels, name=f"{name}_emb")(emb)
    h = layers.Add(name=f"{name}_add_emb")([h, layers.Reshape((1, 1, channels))(e)])
    h = layers.GroupNormalization(groups_for(channels), name=f"{name}_norm2")(h)
    h = layers.Activation("swish", name=f"{name}_act2")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv2")(h)
    if int(x.shape[-1]) != channels:
        x = layers.Conv2D(channels, 1, name=f"{name}_skip")(x)
    return layers.Add(name=f"{name}_out")([x, h])


def _attention(x, name: str):
    """Single-head self-attention over the pixels of a (small) feature map."""
    hh, ww, ch = (int(d) for d in x.shape[1:])
    h = layers.GroupNormalization(groups_for(ch), name=f"{name}_norm")(x)
    h = layers.Reshape((hh * ww, ch), name=f"{name}_tokens")(h)
    h = layers.MultiHeadAttention(1, ch, name=f"{name}_mha")(h, h)
    h = layers.Reshape((hh, ww, ch), name=f"{name}_grid")(h)
    return layers.Add(name=f"{name}_out")([x, h])


def build_unet(
    image_shape: Sequence[int],
    num_classes: int = 0,
    width: int = 32,
    *,
    levels: int | None = None,
    blocks: int = 1,
    attention: bool = True,
    name: str = "unet",
) -> keras.Model:
    """A U-Net: noisy images, time t in [0, 1] (and labels) -> float32 (N, H, W, C).

    Args:
        image_shape: (H, W, C); both sides must halve `levels` times.
        num_classes: > 0 adds an int label input with values 0 ..
            num_classes, the last meaning "no label" (classifier-free
            guidance); 0 builds an unconditional network.
        width: channels at full resolution; level i has width * min(2**i, 4).
        levels: halvings (default: see `unet_levels`).
        blocks: residual blocks per level on the way down (one more on the way up).
        attention: self-attention at the lowest resolution.
        name: model name.

    Inputs are named "images", "time" and "labels"; the output layer is
    float32 (and starts at zero) under mixed precision too.
    """
    if len(image_shape) != 3 or min(int(d) for d in image_shape) <= 0:
        raise ConfigError(f"image_shape: expected (H, W, C) positive integers, got {image_shape}")
    if width < 1:
        raise ConfigError(f"width: must be a positive integer, got {width}")
    if blocks < 1:
        raise ConfigError(f"blocks: must be >= 1, got {blocks}")
    if num_classes < 0:
        raise ConfigError(f"num_classes: must be >= 0, got {num_classes}")
    k = unet_levels(image_shape, levels)
    shape = tuple(int(d) for d in image_shape)
    images = layers.Input(shape, name="images")
    time = layers.Input((), name="time")
    inputs = [images, time]
    emb_dim = 4 * width
    emb = SinusoidalEmbedding(max(2, 2 * (width // 2)), name="time_features")(time)
    emb = layers.Dense(emb_dim, activation="swish", name="time_dense1")(emb)
    emb = layers.Dense(emb_dim, name="time_dense2")(emb)
    if num_classes:
        labels = layers.Input((), dtype="int32", name="labels")
        inputs.append(labels)
        lab = layers.Embedding(num_classes + 1, emb_dim, name="label_embedding")(labels)
        emb = layers.Add(name="time_and_label")([emb, lab])
    emb = layers.Activation("swish", name="embedding")(emb)

    chans = [width * min(2**i, 4) for i in range(k + 1)]
    x = layers.Conv2D(width, 3, padding="same", name="stem")(images)
    skips = [x]
    for i, ch in enumerate(chans):
        for b in range(blocks):
            x = _res_block(x, emb, ch, f"down{i}_{b}")
            skips.append(x)
        if i < k:
            x = layers.Conv2D(ch, 3, strides=2, padding="same", name=f"down{i}_halve")(x)
            skips.append(x)
    x = _res_block(x, emb, chans[-1], "mid0")
    if attention:
        x = _attention(x, "mid_attention")
    x = _res_block(x, emb, chans[-1], "mid1")
    for i in reversed(range(k + 1)):
        for b in range(blocks + 1):
            x = layers.Concatenate(name=f"up{i}_{b}_concat")([x, skips.pop()])
            x = _res_block(x, emb, chans[i], f"up{i}_{b}")
        if i > 0:
            x = layers.UpSampling2D(2, name=f"up{i}_double")(x)
            x = layers.Conv2D(chans[i - 1], 3, padding="same", name=f"up{i}_conv")(x)
    x = layers.GroupNormalization(groups_for(width), name="out_norm")(x)
    x = layers.Activation("swish", name="out_act")(x)
    out = layers.Conv2D(
        shape[-1], 3, padding="same", kernel_initializer="zeros", dtype="float32", name="prediction"
    )(x)
    return keras.Model(inputs, out, name=name)
