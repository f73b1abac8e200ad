"""Library functions behind `tfsynth data info|preview|convert`."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.data.records import write_dataset_dir
from tfsynth.data.sources import load_dataset
from tfsynth.errors import DataError
from tfsynth.io import atomic_write_bytes


def describe(spec: str, *, unlabeled: bool = False) -> dict[str, Any]:
    """Count, shape, classes and class histogram of a dataset ("labels": "unlabelled" without labels).

    >>> describe("mnist-10k[:10]")["num_examples"]
    10
    >>> describe("mnist-10k[:10]", unlabeled=True)["labels"]
    'unlabelled'
    """
    return load_dataset(spec, unlabeled=unlabeled).info()


def preview(spec: str, out: str | os.PathLike, n: int = 50, seed: int = 0, ncols: int = 10) -> Path:
    """Saves a labelled grid of `n` random examples of `spec` to a PNG."""
    from tfsynth.plotting import image_grid, save_figure

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise DataError(f"{out}: --out must be a .png file")
    ds = load_dataset(spec)
    n = min(n, len(ds))
    if ds.is_streamed:
        # Streams are read from the start rather than loaded whole.
        batch = next(ds.iter_batches(n))
        images, labels = batch["image"], batch["label"]
    else:
        idx = np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False))
        images, labels = ds.images[idx], ds.labels[idx]
    fig = image_grid(
        images,
        labels if ds.labeled else None,
        ds.class_names,
        ncols=ncols,
        title=f"{ds.name}: {n} of {len(ds)}",
    )
    return save_figure(fig, out)


def convert(spec: str, out: str | os.PathLike, overwrite: bool = False) -> dict[str, Any]:
    """Converts a dataset to an .npz file or to a tfsynth dataset directory.

    Returns the info dict of what was written.
    """
    out = Path(out)
    ds = load_dataset(spec)
    if out.suffix.lower() == ".npz":
        if out.exists() and not overwrite:
            raise DataError(f"{out}: already exists; choose another --out or remove it")
        images, labels = ds.numpy()
        buf = io.BytesIO()
        if ds.labeled:
            np.savez_compressed(
                buf, images=images, labels=labels, class_names=np.array(ds.class_names)
            )
        else:  # an npz without labels reads back as unlabelled
            np.savez_compressed(buf, images=images)
        atomic_write_bytes(out, buf.getvalue())
    else:
        write_dataset_dir(out, ds, metadata={"source": spec}, overwrite=overwrite)
    return {**ds.info(), "out": str(out)}
