"""Shared tiny datasets for the evaluation tests."""

import numpy as np

from tfsynth.data import ImageDataset


def separable(n=32, seed=0, flip=False, name="sep", size=16):
    """Class 0 is dark, class 1 bright: a tiny CNN learns it in a few steps.

    `flip` swaps the labels, a synthetic set whose labels are all wrong.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, size, size, 1)) + 180 * labels[:, None, None, None]
    return ImageDataset(
        images.astype(np.uint8),
        1 - labels if flip else labels,
        class_names=["dark", "bright"],
        name=name,
    )
