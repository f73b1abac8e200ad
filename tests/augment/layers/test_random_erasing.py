"""Tests of RandomErasing."""

import numpy as np

from tests.augment.layers.contract import check_layer_contract
from tests.conftest import make_arrays
from tfsynth.augment.layers import RandomErasing


def test_random_erasing_contract():
    check_layer_contract(lambda: RandomErasing(probability=1.0, seed=1))


def test_random_erasing_is_identity_at_strength_zero():
    x = make_arrays(4, 16, 16, 1)[0]
    np.testing.assert_array_equal(RandomErasing(probability=0.0)(x, training=True).numpy(), x)


def test_erasing_erases_a_rectangle_only():
    x = np.full((4, 16, 16, 1), 255, np.uint8)
    out = RandomErasing(probability=1.0, fill=0.0, seed=0)(x).numpy()[..., 0]
    for img in out:
        rows, cols = np.nonzero(img == 0)
        assert rows.size > 0
        box = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert (box == 0).all()
