"""Shared test set-up: quiet TensorFlow, tiny generated datasets."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def make_arrays(n=12, h=16, w=16, c=1, num_classes=3, seed=0):
    """Random uint8 images with labels 0..num_classes-1 (every class present)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    labels = np.arange(n) % num_classes
    return images, labels


@pytest.fixture
def tiny_dataset():
    from tfsynth.data import ImageDataset

    images, labels = make_arrays()
    return ImageDataset(images, labels, class_names=["a", "b", "c"], name="tiny")


def listing(path):
    """All names under `path`, including hidden temporaries."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
