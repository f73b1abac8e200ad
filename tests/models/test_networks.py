"""Network builders: shapes for the supported image sizes, conditioning, bad sizes."""

import numpy as np
import pytest

from tfsynth.errors import ConfigError
from tfsynth.models import networks

SHAPES = [(16, 16, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_generator_and_discriminator_shapes(shape):
    g = networks.build_generator(shape, latent_dim=8, num_classes=3, width=4)
    d = networks.build_discriminator(shape, num_classes=3, width=4)
    x = g.predict([np.zeros((2, 8), "float32"), np.array([0, 2])], verbose=0)
    assert x.shape == (2, *shape)
    assert np.all(np.abs(x) <= 1.0)
    assert d.predict([x, np.array([0, 2])], verbose=0).shape == (2, 1)


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_encoder_decoder_shapes(shape):
    e = networks.build_encoder(shape, latent_dim=5, width=4)
    dec = networks.build_decoder(shape, latent_dim=5, width=4)
    mean, log_var = e.predict(np.zeros((2, *shape), "float32"), verbose=0)
    assert mean.shape == log_var.shape == (2, 5)
    assert dec.predict(mean, verbose=0).shape == (2, *shape)


def test_resamples():
    assert [networks.num_resamples(s) for s in SHAPES] == [2, 2, 3, 4]
    assert networks.num_resamples((24, 40, 1)) == 2  # 6x10 start
    assert networks.num_resamples((20, 30, 1)) == 1  # 30 has one factor of 2: 10x15 start


def test_projection_depends_on_label():
    d = networks.build_discriminator((16, 16, 1), num_classes=4, width=4)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 1)).astype("float32")
    a = d.predict([x, np.array([0])], verbose=0)
    b = d.predict([x, np.array([3])], verbose=0)
    assert not np.allclose(a, b)


def test_discriminator_head():
    # The hidden head (default 8 * width units) keeps the projection
    # discriminator non-linear in the image; 0 removes it.
    d = networks.build_discriminator((16, 16, 1), num_classes=3, width=4)
    assert d.get_layer("head").units == 32
    assert d.get_layer("class_projection").output_dim == 32
    flat = networks.build_discriminator((16, 16, 1), num_classes=3, width=4, head_units=0)
    assert "head" not in [layer.name for layer in flat.layers]
    assert flat.get_layer("class_projection").output_dim == 4 * 4 * 8
    with pytest.raises(ConfigError, match="head_units"):
        networks.build_discriminator((16, 16, 1), width=4, head_units=-1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_shape": (4, 4, 1)}, "at least 8x8"),
        ({"image_shape": (16, 16)}, "expected \\(H, W, C\\)"),
        ({"image_shape": (16, 16, 1), "width": 0}, "width"),
        ({"image_shape": (16, 16, 1), "norm": "group"}, "norm"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        networks.build_generator(**kwargs)
