"""tfsynth: real image data -> augmented + generated -> validated synthetic training set.

The public API, imported explicitly (the CLI and the notebooks call these):

>>> import tfsynth
>>> ds = tfsynth.load_dataset("mnist-10k[:100]")
>>> ds.shape
(28, 28, 1)
"""

__version__ = "0.1.0"

from tfsynth._quiet import import_tensorflow_quietly

# TensorFlow logs a lot at import; keep tfsynth's own output readable unless
# the user asked for TF's logs by setting TF_CPP_MIN_LOG_LEVEL.
import_tensorflow_quietly()

from tfsynth.augment import augment_batches, augment_to_dir, build_policy  # noqa: E402
from tfsynth.config import RunConfig, preset  # noqa: E402
from tfsynth.data import ImageDataset, load_dataset, write_dataset_dir  # noqa: E402
from tfsynth.errors import ConfigError, DataError, TfsynthError  # noqa: E402
from tfsynth.evaluation import evaluate, evaluate_to_dir  # noqa: E402
from tfsynth.export import export_generator  # noqa: E402
from tfsynth.fusion import FusionConfig, build_fused  # noqa: E402
from tfsynth.models import build_model, load_generator, model_id  # noqa: E402
from tfsynth.report import write_report  # noqa: E402
from tfsynth.runner import run  # noqa: E402
from tfsynth.training import generate, train  # noqa: E402

__all__ = [
    "ConfigError",
    "DataError",
    "FusionConfig",
    "ImageDataset",
    "RunConfig",
    "TfsynthError",
    "__version__",
    "augment_batches",
    "augment_to_dir",
    "build_fused",
    "build_model",
    "build_policy",
    "evaluate",
    "evaluate_to_dir",
    "export_generator",
    "generate",
    "load_dataset",
    "load_generator",
    "model_id",
    "preset",
    "run",
    "train",
    "write_dataset_dir",
    "write_report",
]
