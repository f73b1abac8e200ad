"""The checks every tfsynth augmentation layer passes (used by each layer's test file)."""

import numpy as np

from tests.conftest import make_arrays


def check_layer_contract(make):
    """`make()` builds a seeded layer at a strength that changes the images."""
    layer = make()
    x = make_arrays(4, 16, 16, 3)[0]
    # identity at inference
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    out = layer(x, training=True).numpy()
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert not np.array_equal(out, x)
    # same seed -> same output; config round trip rebuilds the same layer
    clone = type(layer).from_config(layer.get_config())
    np.testing.assert_array_equal(make()(x).numpy(), clone(x).numpy())
    # float input keeps its dtype and range
    xf = x.astype(np.float32)
    yf = layer(xf).numpy()
    assert yf.dtype == np.float32 and yf.min() >= 0 and yf.max() <= 255
