"""Validation of synthetic data: distribution metrics, utility and privacy.

- `classifier`: the one fixed small-CNN recipe (features, utility, label agreement).
- `neighbors`: exact, memory-bounded k-nearest-neighbour distances.
- `features`: domain classifier / InceptionV3 / any Keras layer as feature extractor.
- `distribution`: FID, KID, precision/recall, density/coverage, per-class FID.
- `utility`: TRTR, TSTR, TRTS, D vs D', the low-data curve.
- `privacy`: distance to closest record, memorization rate, nearest-neighbour grid.
- `evaluate`: all of it in one call (`evaluate`, `evaluate_to_dir`).
"""

from tfsynth.evaluation.classifier import (
    accuracy,
    build_classifier,
    predict_labels,
    train_classifier,
)
from tfsynth.evaluation.evaluate import evaluate, evaluate_to_dir
from tfsynth.evaluation.neighbors import (
    count_in_balls,
    knn,
    knn_distances,
    nearest_neighbor,
)

__all__ = [
    "accuracy",
    "build_classifier",
    "count_in_balls",
    "evaluate",
    "evaluate_to_dir",
    "knn",
    "knn_distances",
    "nearest_neighbor",
    "predict_labels",
    "train_classifier",
]
