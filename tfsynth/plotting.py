"""Matplotlib figures shared by the CLI, training callbacks and reports."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen on servers and CI; figures go to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def tile_images(images: np.ndarray, ncols: int, pad: int = 1) -> np.ndarray:
    """Tiles (N, H, W, C) uint8 images into one (rows*H, ncols*W, C) mosaic.

    Used for TensorBoard image summaries and PNG sample grids alike.

    >>> tile_images(np.zeros((6, 4, 4, 1), np.uint8), ncols=3).shape
    (9, 14, 1)
    """
    images = np.asarray(images)
    n, h, w, c = images.shape
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad, c), 255, images.dtype)
    for i in range(n):
        r, col = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = images[i]
    return out


def _show(ax, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])


def _mosaic_figure(mosaic: np.ndarray, figsize, title: str | None):
    # One imshow of a tiled mosaic: a grid of per-image subplots cost seconds
    # per figure, paid by every sample grid of a training run.
    fig, ax = plt.subplots(figsize=figsize)
    _show(ax, mosaic)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig, ax


def image_grid(
    images: np.ndarray,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    ncols: int = 10,
    title: str | None = None,
):
    """A grid of uint8 images, each titled by its label when given; returns the Figure.

    >>> fig = image_grid(np.zeros((6, 4, 4, 1), np.uint8), ncols=3)
    >>> fig.axes[0].get_images()[0].get_array().shape
    (10, 16)
    """
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    size = (ncols * 1.1, nrows * 1.25 + (0.4 if title else 0))
    if labels is None:
        return _mosaic_figure(tile_images(images, ncols, pad=2), size, title)[0]
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show(ax, images[i])
            lab = int(labels[i])
            name = (
                class_names[lab] if class_names is not None and lab < len(class_names) else str(lab)
            )
            ax.set_title(name, fontsize=8)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def class_grid(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    per_class: int = 10,
    title: str | None = None,
):
    """One row per class with up to `per_class` examples (blank where fewer); returns the Figure.

    >>> images = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1) * 60
    >>> fig = class_grid(images, np.array([0, 1, 1, 1]), ["a", "b"], per_class=2)
    >>> fig.axes[0].get_images()[0].get_array().tolist()
    [[0, 255, 255], [255, 255, 255], [60, 255, 120]]
    """
    images, labels = np.asarray(images), np.asarray(labels)
    k = len(class_names)
    h, w, c = images.shape[1:]
    rows = np.full((k * per_class, h, w, c), 255, images.dtype)
    for cls in range(k):
        idx = np.flatnonzero(labels == cls)[:per_class]
        rows[cls * per_class : cls * per_class + len(idx)] = images[idx]
    pad = 2 if h > 2 else 1
    size = (per_class * 0.9, k * 0.9 + (0.4 if title else 0))
    fig, ax = _mosaic_figure(tile_images(rows, per_class, pad=pad), size, title)
    ax.set_yticks([cls * (h + pad) + (h - 1) / 2 for cls in range(k)])
    ax.set_yticklabels(list(class_names), fontsize=8)
    ax.tick_params(axis="y", length=0)
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Saves a Figure atomically (temp name, then rename) and closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    return path
