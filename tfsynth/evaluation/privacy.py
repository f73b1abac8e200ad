"""Privacy: does the synthetic data copy its training images?

- Distance to closest record (DCR): for each synthetic sample, the distance
  to its nearest *training* image; compared with the same distance for
  held-out real images (which the generator never saw). A generator that
  generalizes produces synthetic->train distances like holdout->train ones;
  a memorizing one produces many much smaller distances.
- Memorization rate: the share of synthetic samples closer to a training
  image than the 5th percentile of the holdout->train distances (for real
  holdout data this share is 5% by construction, so that is the reference).
- A nearest-neighbour grid: the synthetic samples closest to the training
  set, each above its nearest training image, for a human to judge.

Distances are Euclidean in pixel space scaled to [0, 1] by default (what
"copying an image" means), or in any feature space the caller passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfsynth.errors import DataError
from tfsynth.evaluation.neighbors import DEFAULT_BLOCK_SIZE, nearest_neighbor

MEMORIZATION_PERCENTILE = 5.0


def pixel_vectors(images) -> np.ndarray:
    """uint8 NHWC images -> float32 (N, H*W*C) vectors in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise DataError(f"expected NHWC images, got shape {images.shape}")
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def dcr(query, train, *, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Distance to closest record: (distances (N,), train indices (N,)).

    `query` and `train` are vectors (N, D) or images (flattened as given;
    use `pixel_vectors` for the [0, 1] scale).
    """
    return nearest_neighbor(query, train, block_size=block_size)


def privacy_metrics(
    synthetic,
    train,
    holdout,
    *,
    percentile: float = MEMORIZATION_PERCENTILE,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """DCR statistics and the memorization rate.

    Args:
        synthetic, train, holdout: vectors (N, D) in one space (for images,
            `pixel_vectors` of each).
        percentile: the holdout->train distance percentile that defines
            "too close" (5 by default).

    Returns:
        (metrics, synthetic DCR distances, index of each synthetic sample's
        nearest training row). Metrics: ``dcr_synthetic_median``,
        ``dcr_holdout_median``, ``dcr_synthetic_p5``, ``dcr_holdout_p5``,
        ``dcr_ratio`` (synthetic median / holdout median; < 1 means closer
        to the training data than new real data is), ``memorization_rate``,
        ``memorization_threshold`` and ``exact_copies`` (distance 0).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> train, holdout = rng.random((50, 8)), rng.random((50, 8))
    >>> m, _, _ = privacy_metrics(train[:10], train, holdout)  # copies of training rows
    >>> m["memorization_rate"], m["exact_copies"]
    (1.0, 10)
    """
    if not 0 < percentile < 100:
        raise DataError(f"percentile must be in (0, 100), got {percentile}")
    syn_d, syn_i = dcr(synthetic, train, block_size=block_size)
    hold_d, _ = dcr(holdout, train, block_size=block_size)
    threshold = float(np.percentile(hold_d, percentile))
    hold_med = float(np.median(hold_d))
    syn_med = float(np.median(syn_d))
    metrics = {
        "dcr_synthetic_median": syn_med,
        "dcr_holdout_median": hold_med,
        "dcr_synthetic_p5": float(np.percentile(syn_d, 5)),
        "dcr_holdout_p5": float(np.percentile(hold_d, 5)),
        "dcr_ratio": syn_med / hold_med if hold_med > 0 else None,
        "memorization_rate": float(np.mean(syn_d < threshold)),
        "memorization_threshold": threshold,
        "memorization_percentile": percentile,
        # Exact copies: distance zero up to the float64 round-off of the expansion.
        "exact_copies": int(np.sum(syn_d <= 1e-6)),
    }
    return metrics, syn_d, syn_i


def nearest_neighbor_grid(
    synthetic_images,
    train_images,
    distances: np.ndarray,
    indices: np.ndarray,
    *,
    n: int = 10,
    title: str | None = "closest synthetic samples (top) and their nearest training image",
):
    """The `n` synthetic samples closest to the training set, above their neighbours.

    Returns a matplotlib Figure (save it with `tfsynth.plotting.save_figure`).
    """
    from tfsynth.plotting import image_grid

    order = np.argsort(distances, kind="stable")[: max(1, min(n, len(distances)))]
    syn = np.asarray(synthetic_images)[order]
    near = np.asarray(train_images)[np.asarray(indices)[order]]
    # image_grid titles each cell with class_names[label]; the "labels" here
    # index a list of captions (distance above, training row below).
    captions: Sequence[str] = [f"d={distances[i]:.2f}" for i in order] + [
        f"train #{indices[i]}" for i in order
    ]
    return image_grid(
        np.concatenate([syn, near]),
        labels=np.arange(2 * len(order)),
        class_names=captions,
        ncols=len(order),
        title=title,
    )
