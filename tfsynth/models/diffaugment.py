"""DiffAugment: differentiable augmentation for GANs trained on little data.

Zhao et al. (2020), "Differentiable Augmentation for Data-Efficient GAN
Training": the same random translation / cutout / colour transform is
applied to real and generated images before the discriminator, and
gradients flow through it to the generator. Every op here is
differentiable with respect to the images; the randomness comes from an
explicit stateless seed so that XLA and distribution strategies are happy.

Example:

>>> import numpy as np, tensorflow as tf
>>> x = tf.zeros((2, 8, 8, 1))
>>> y = diff_augment(x, "translation,cutout,color", seed=tf.constant([1, 2]))
>>> tuple(y.shape)
(2, 8, 8, 1)
"""

from __future__ import annotations

import tensorflow as tf

from tfsynth.errors import ConfigError

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """'translation,cutout' -> ('translation', 'cutout'); None/'' -> ()."""
    if not policy:
        return ()
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    for p in parts:
        if p not in POLICIES:
            raise ConfigError(f"diffaugment: unknown transform {p!r}; expected some of {POLICIES}")
    return parts


def _uniform(shape, seed, i, lo=0.0, hi=1.0):
    return tf.random.stateless_uniform(shape, seed=seed + [0, i], minval=lo, maxval=hi)


def color(x, seed):
    """Random brightness (+-0.5), saturation (x[0, 2]) and contrast (x[0.5, 1.5])."""
    n = tf.shape(x)[0]
    x = x + (_uniform([n, 1, 1, 1], seed, 0) - 0.5)
    if x.shape[-1] and x.shape[-1] > 1:
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        x = (x - mean) * _uniform([n, 1, 1, 1], seed, 1, 0.0, 2.0) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * _uniform([n, 1, 1, 1], seed, 2, 0.5, 1.5) + mean


def translation(x, seed, ratio: float = 0.125):
    """Random shifts up to `ratio` of the side, filling with zeros (mid-grey)."""
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    sy, sx = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    ty = tf.random.stateless_uniform(
        [n, 1], seed=seed + [0, 3], minval=-sy, maxval=sy + 1, dtype=tf.int32
    )
    tx = tf.random.stateless_uniform(
        [n, 1], seed=seed + [0, 4], minval=-sx, maxval=sx + 1, dtype=tf.int32
    )
    padded = tf.pad(x, [[0, 0], [sy, sy], [sx, sx], [0, 0]])
    rows = tf.range(h)[None, :] + sy - ty  # (n, h) source rows in the padded image
    cols = tf.range(w)[None, :] + sx - tx
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def cutout(x, seed, ratio: float = 0.5):
    """Zeroes one random square of side `ratio` * image side per image."""
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = tf.random.stateless_uniform(
        [n, 1, 1], seed=seed + [0, 5], minval=0, maxval=h + (1 - ch % 2), dtype=tf.int32
    )
    cx = tf.random.stateless_uniform(
        [n, 1, 1], seed=seed + [0, 6], minval=0, maxval=w + (1 - cw % 2), dtype=tf.int32
    )
    ys = tf.range(h)[None, :, None]
    xs = tf.range(w)[None, None, :]
    y0, x0 = cy - ch // 2, cx - cw // 2  # the square may hang over the border
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * tf.cast(~inside, x.dtype)[..., None]


def diff_augment(x, policy: str | tuple[str, ...] | None, seed) -> tf.Tensor:
    """Applies the transforms named in `policy` (in the order colour, translation, cutout).

    Args:
        x: images (N, H, W, C), float in [-1, 1].
        policy: "color,translation,cutout" or a subset, or a parsed tuple.
        seed: int32 tensor of shape (2,); the same seed gives the same transform.
    """
    parts = parse_policy(policy) if isinstance(policy, str) or policy is None else policy
    seed = tf.cast(seed, tf.int32)
    for name in POLICIES:
        if name in parts:
            x = {"color": color, "translation": translation, "cutout": cutout}[name](x, seed)
    return x
