"""tfsynth: real image data -> augmented + generated -> validated synthetic training set."""

__version__ = "0.1.0"

from tfsynth._quiet import import_tensorflow_quietly

# TensorFlow logs a lot at import; keep tfsynth's own output readable unless
# the user asked for TF's logs by setting TF_CPP_MIN_LOG_LEVEL.
import_tensorflow_quietly()

from tfsynth.data import ImageDataset, load_dataset, write_dataset_dir  # noqa: E402
from tfsynth.errors import ConfigError, DataError, TfsynthError  # noqa: E402

__all__ = [
    "ConfigError",
    "DataError",
    "ImageDataset",
    "TfsynthError",
    "__version__",
    "load_dataset",
    "write_dataset_dir",
]
