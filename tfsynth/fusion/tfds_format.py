"""Writes a finished D' as a TFDS dataset (`tfsynth fuse --format tfds`).

`tfds.dataset_builders.store_as_tfds_dataset` writes DIR/NAME/1.0.0/ with
dataset_info.json, so `tfds.builder_from_directory` and
`tfsynth.load_dataset(DIR)` (see `tfsynth.data.tfds_store`) read it back.
Order is kept (`disable_shuffling`): D' is already globally shuffled.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

TFDS_VERSION = "1.0.0"


def tfds_name(name: str) -> str:
    """A valid TFDS dataset name (snake_case identifier) from a directory name.

    >>> tfds_name("D-prime.v2")
    'd_prime_v2'
    """
    s = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "fused"
    return s if s[0].isalpha() else f"d_{s}"


def _features(manifest):
    import numpy as np
    import tensorflow_datasets as tfds

    feats = {
        "image": tfds.features.Image(shape=tuple(manifest["shape"]), dtype=np.uint8),
        "label": tfds.features.ClassLabel(names=manifest["class_names"]),
    }
    for name, spec in manifest["features"].items():
        if spec["dtype"] == "string" and not spec["shape"]:
            feats[name] = tfds.features.Text()
        elif spec["dtype"] == "string":
            feats[name] = tfds.features.Tensor(shape=tuple(spec["shape"]), dtype=np.str_)
        else:
            dtype = np.int64 if spec["dtype"] == "int64" else np.float32
            feats[name] = tfds.features.Tensor(shape=tuple(spec["shape"]), dtype=dtype)
    return tfds.features.FeaturesDict(feats)


def write_tfds(records_dir: str | os.PathLike, data_dir: str | os.PathLike, name: str) -> Path:
    """Converts a tfsynth dataset directory into a TFDS dataset under `data_dir`.

    Returns the DIR/NAME/VERSION directory that holds dataset_info.json.
    """
    import tensorflow_datasets as tfds

    from tfsynth.data.records import load_dataset_dir, read_manifest

    manifest = read_manifest(records_dir)
    elements = load_dataset_dir(records_dir).element_dataset()
    tfds.disable_progress_bar()
    # TFDS prints "Downloading and preparing dataset ..." to stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        tfds.dataset_builders.store_as_tfds_dataset(
            name=tfds_name(name),
            version=TFDS_VERSION,
            features=_features(manifest),
            split_datasets={"train": elements},
            data_dir=str(data_dir),
            description="D': real, augmented and generated examples fused by tfsynth",
            file_format="tfrecord",
            disable_shuffling=True,
        )
    shutil.rmtree(Path(data_dir) / "downloads", ignore_errors=True)
    return Path(data_dir) / tfds_name(name) / TFDS_VERSION
