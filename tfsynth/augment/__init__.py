"""D_aug: augmentation policies built from Keras preprocessing layers.

- `build_policy(spec, seed=..., num_classes=...)` -> `AugmentationPolicy`, a
  Keras layer usable in a model or in a tf.data pipeline
  (`ImageDataset.to_tf_dataset(..., augment=policy)`);
- `augment_batches(dataset, policy, n, seed=..., start=...)` yields augmented
  examples with provenance, reproducible for any index range;
- `augment_to_dir(data, policy, n, seed=..., out=...)` writes them as a
  tfsynth dataset directory.
"""

from tfsynth.augment.layers import ElasticDistortion, RandomErasing, SeededRandAugment
from tfsynth.augment.materialize import BLOCK_SIZE, augment_batches, augment_to_dir
from tfsynth.augment.policy import OPS, PRESETS, AugmentationPolicy, build_policy, parse_policy

__all__ = [
    "BLOCK_SIZE",
    "OPS",
    "PRESETS",
    "AugmentationPolicy",
    "ElasticDistortion",
    "RandomErasing",
    "SeededRandAugment",
    "augment_batches",
    "augment_to_dir",
    "build_policy",
    "parse_policy",
]
