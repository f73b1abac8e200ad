"""Validation of synthetic data: distribution metrics, utility and privacy.

- `classifier`: the one fixed small-CNN recipe (features, utility, label agreement).
- `neighbors`: exact, memory-bounded k-nearest-neighbour distances.
"""

from tfsynth.evaluation.classifier import (
    accuracy,
    build_classifier,
    predict_labels,
    train_classifier,
)
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
    "knn",
    "knn_distances",
    "nearest_neighbor",
    "predict_labels",
    "train_classifier",
]
