"""Tests of SeededRandAugment."""

import numpy as np
import tensorflow as tf

from tests.conftest import make_arrays
from tfsynth.augment.draws import StatelessSeed
from tfsynth.augment.layers import SeededRandAugment


def test_seeded_randaugment_honours_seed():
    layer = SeededRandAugment(value_range=(0, 255), factor=0.5, seed=0)
    x = tf.constant(make_arrays(4, 16, 16, 3)[0], tf.float32)

    def run(seed):
        t = layer.get_random_transformation(x, seed=StatelessSeed(seed))
        return layer.transform_images(x, t).numpy(), t["layer_idxes"].numpy()

    (a, ia), (b, ib) = run([5, 6]), run([5, 6])
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a, b)
    assert ia.shape == (2, 4)  # num_ops x batch: ops are chosen per image
