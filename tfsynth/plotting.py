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


def image_grid(
    images: np.ndarray,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    ncols: int = 10,
    title: str | None = None,
):
    """A labelled grid of uint8 images; returns the matplotlib Figure."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * 1.1, nrows * 1.25 + (0.4 if title else 0)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show(ax, images[i])
            if labels is not None:
                lab = int(labels[i])
                name = (
                    class_names[lab]
                    if class_names is not None and lab < len(class_names)
                    else str(lab)
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
    """One row per class with up to `per_class` examples; returns the Figure."""
    images, labels = np.asarray(images), np.asarray(labels)
    k = len(class_names)
    fig, axes = plt.subplots(
        k, per_class, figsize=(per_class * 0.9, k * 0.9 + (0.4 if title else 0)), squeeze=False
    )
    for c in range(k):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            if j < len(idx):
                _show(ax, images[idx[j]])
            else:
                ax.axis("off")
        axes[c, 0].set_ylabel(class_names[c], rotation=0, ha="right", va="center", fontsize=8)
        axes[c, 0].axis("on")
        axes[c, 0].set_xticks([])
        axes[c, 0].set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
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
