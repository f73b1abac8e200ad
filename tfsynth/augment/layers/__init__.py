"""The augmentation layers Keras lacks, one per file, with Keras 3's image-layer interface.

`get_random_transformation` / `transform_images` like Keras' image
preprocessing layers, and `get_config` so models holding them reload:

- `ElasticDistortion` and `RandomErasing` (on `RandomImageLayer`);
- `SeededRandAugment`: Keras' `RandAugment`, honouring its seed, per image.
"""

from tfsynth.augment.layers.elastic_distortion import ElasticDistortion
from tfsynth.augment.layers.random_erasing import RandomErasing
from tfsynth.augment.layers.random_image_layer import RandomImageLayer
from tfsynth.augment.layers.seeded_rand_augment import SeededRandAugment

__all__ = ["ElasticDistortion", "RandomErasing", "RandomImageLayer", "SeededRandAugment"]
