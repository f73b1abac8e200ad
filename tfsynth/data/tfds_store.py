"""Reading TFDS-format dataset directories (as written by `tfsynth fuse --format tfds`)."""

from __future__ import annotations

import os
from pathlib import Path

from tfsynth.errors import DataError


def _info_dir(path: Path) -> Path | None:
    # store_as_tfds_dataset writes DIR/NAME/VERSION/dataset_info.json; accept
    # any of those three levels.
    if (path / "dataset_info.json").is_file():
        return path
    found = sorted(path.glob("*/dataset_info.json")) + sorted(path.glob("*/*/dataset_info.json"))
    return found[0].parent if found else None


def is_tfds_dir(path: str | os.PathLike) -> bool:
    """True when `path` holds a prepared TFDS dataset (dataset_info.json)."""
    return _info_dir(Path(path)) is not None


def load_tfds_dir(path: str | os.PathLike, split: str = "train"):
    """Opens a prepared TFDS directory with `tfds.builder_from_directory`, streamed."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from tfsynth.data.dataset import ImageDataset

    info_dir = _info_dir(Path(path))
    if info_dir is None:
        raise DataError(f"{path}: no dataset_info.json found")
    try:
        builder = tfds.builder_from_directory(str(info_dir))
        num = builder.info.splits[split].num_examples
    except Exception as e:
        raise DataError(
            f"{info_dir}: cannot open TFDS dataset ({str(e).splitlines()[0][:200]})"
        ) from None
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    shape = builder.info.features[image_key].shape
    class_names = list(builder.info.features[label_key].names)
    extra_keys = [k for k in builder.info.features if k not in (image_key, label_key)]

    def stream(start: int, stop: int):
        ds = builder.as_dataset(split=split, shuffle_files=False).skip(start).take(stop - start)

        def to_example(e):
            out = {
                "image": tf.cast(e[image_key], tf.uint8),
                "label": tf.cast(e[label_key], tf.int64),
            }
            out.update({k: e[k] for k in extra_keys})
            return out

        return ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)

    return ImageDataset(
        stream=stream,
        num_examples=num,
        image_shape=shape,
        class_names=class_names,
        name=f"tfds-dir:{info_dir}",
    )
