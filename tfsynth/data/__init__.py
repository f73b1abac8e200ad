"""Real data in, tf.data out."""

from tfsynth.data.dataset import ImageDataset, validate_arrays
from tfsynth.data.idx import read_idx, write_idx
from tfsynth.data.pipeline import make_pipeline, to_uint8, to_unit_range
from tfsynth.data.records import (
    is_dataset_dir,
    load_dataset_dir,
    read_manifest,
    write_dataset_dir,
)
from tfsynth.data.sources import load_dataset, parse_spec

__all__ = [
    "ImageDataset",
    "is_dataset_dir",
    "load_dataset",
    "load_dataset_dir",
    "make_pipeline",
    "parse_spec",
    "read_idx",
    "read_manifest",
    "to_uint8",
    "to_unit_range",
    "validate_arrays",
    "write_dataset_dir",
    "write_idx",
]
