"""GAN and VAE trainers: 28x28 training, n_critic, EMA, DiffAugment, errors.

The per-model contract (two steps, config and .keras round trips, resumed
training) is tests/models/test_contract.py.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_arrays
from tests.helpers import GAN_NAMES
from tfsynth.errors import ConfigError, DataError
from tfsynth.models import MODEL_NAMES, build_model, load_generator
from tfsynth.models.diffaugment import diff_augment
from tfsynth.models.gan import GAN


def _data(h, n=8, k=3):
    images, labels = make_arrays(n=n, h=h, w=h, num_classes=k)
    return (images.astype("float32") / 127.5 - 1.0), labels


def _tiny(name, h, k=3, **kw):
    m = build_model(name, (h, h, 1), num_classes=k, latent_dim=8, width=4, seed=1, **kw)
    m.compile(jit_compile=False)
    return m


# 16x16 (every name) is in tests/models/test_contract.py; the ddpm at 28x28 in test_diffusion.py.
@pytest.mark.parametrize("h", [28])
@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "ddpm"])
def test_every_model_trains_two_steps(name, h):
    # n_critic=2 keeps the unrolled WGAN-GP step cheap to trace.
    m = _tiny(name, h, **({"n_critic": 2} if name == "wgan-gp" else {}))
    x, y = _data(h)
    hist = m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert int(m.train_steps.numpy()) == 2
    assert hist.history, name
    for key, values in hist.history.items():
        assert np.isfinite(values).all(), (name, key, values)
    labels = np.array([0, 1]) if m.num_classes else None
    out = m.generate(np.zeros((2, m.latent_dim), "float32"), labels).numpy()
    assert out.shape == (2, h, h, 1) and np.isfinite(out).all()
    assert np.abs(out).max() <= 1.0


def test_wgan_gp_takes_n_critic_steps_and_penalty():
    m = _tiny("wgan-gp", 16, n_critic=3)
    x, y = _data(16)
    hist = m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert int(m.d_optimizer.iterations.numpy()) == 6
    assert int(m.g_optimizer.iterations.numpy()) == 2
    assert hist.history["penalty"][0] >= 0


def test_gan_names_are_the_gans():
    assert GAN_NAMES == ("dcgan", "wgan-gp", "hinge", "cgan")
    for name in MODEL_NAMES:
        m = build_model(name, (16, 16, 1), num_classes=2, latent_dim=8, width=4)
        assert isinstance(m, GAN) == (name in GAN_NAMES), name


def test_ema_tracks_generator():
    m = _tiny("dcgan", 16, ema_decay=0.5)
    before = [w.numpy().copy() for w in m.ema_generator.trainable_weights]
    m.fit(*_data(16), batch_size=4, epochs=1, verbose=0)
    g = [w.numpy() for w in m.generator.trainable_weights]
    e = [w.numpy() for w in m.ema_generator.trainable_weights]
    moved = [not np.allclose(a, b) for a, b in zip(before, e)]
    assert any(moved)
    # After two steps with decay 0.5 the EMA lies between its start and the generator.
    assert any(not np.allclose(a, b) for a, b in zip(g, e))


def test_diff_augment_is_seeded_and_differentiable():
    x = tf.random.stateless_uniform((2, 16, 16, 3), seed=[0, 1], minval=-1, maxval=1)
    a = diff_augment(x, "color,translation,cutout", tf.constant([3, 4]))
    b = diff_augment(x, "color,translation,cutout", tf.constant([3, 4]))
    c = diff_augment(x, "color,translation,cutout", tf.constant([5, 4]))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(diff_augment(x, "translation,cutout,color", tf.constant([1, 1])))
    assert tape.gradient(loss, x) is not None
    with pytest.raises(ConfigError, match="diffaugment"):
        diff_augment(x, "flip", tf.constant([1, 1]))


def test_build_and_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="model: expected one of"):
        build_model("stylegan", (16, 16, 1))
    with pytest.raises(ConfigError, match="needs >= 2 classes"):
        build_model("cgan", (16, 16, 1), num_classes=1)
    with pytest.raises(ConfigError, match="loss"):
        build_model("cgan", (16, 16, 1), num_classes=2, loss="l2")
    with pytest.raises(DataError, match="model file not found"):
        load_generator(tmp_path)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a loadable tfsynth model"):
        load_generator(bad)
    m = _tiny("cgan", 16)
    with pytest.raises(ConfigError, match="labels"):
        m.generate(np.zeros((1, 8), "float32"))
