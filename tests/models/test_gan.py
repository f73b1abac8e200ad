"""GAN and VAE trainers: every model trains, conditional labels, .keras round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_arrays
from tfsynth.errors import ConfigError, DataError
from tfsynth.models import MODEL_NAMES, build_model, load_generator, model_id
from tfsynth.models.diffaugment import diff_augment
from tfsynth.models.gan import GAN

GAN_NAMES = tuple(n for n in MODEL_NAMES if n not in ("vae", "cvae", "ddpm"))


def _data(h, n=8, k=3):
    images, labels = make_arrays(n=n, h=h, w=h, num_classes=k)
    return (images.astype("float32") / 127.5 - 1.0), labels


def _tiny(name, h, k=3, **kw):
    m = build_model(name, (h, h, 1), num_classes=k, latent_dim=8, width=4, seed=1, **kw)
    m.compile(jit_compile=False)
    return m


@pytest.mark.parametrize("h", [16, 28])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_two_steps(name, h):
    # n_critic=2 keeps the unrolled WGAN-GP step cheap to trace; n_critic is tested below.
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


@pytest.mark.parametrize("r1_gamma", [0.0, 1.0], ids=["no-r1", "r1"])
@pytest.mark.parametrize("n_critic", [1, 2])
@pytest.mark.parametrize("name", GAN_NAMES)
def test_gan_steps_per_n_critic_and_penalty(name, n_critic, r1_gamma):
    # Regression: with n_critic > 1 and no penalty, train_step updated a None tracker.
    m = _tiny(name, 16, n_critic=n_critic, r1_gamma=r1_gamma)
    penalized = name == "wgan-gp" or r1_gamma > 0
    assert (m.penalty_tracker is not None) == penalized
    x, y = _data(16)
    hist = m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    steps = 2
    assert int(m.train_steps.numpy()) == steps
    assert int(m.d_optimizer.iterations.numpy()) == steps * n_critic
    assert int(m.g_optimizer.iterations.numpy()) == steps
    expected = {"d_loss", "g_loss"} | ({"penalty"} if penalized else set())
    assert set(hist.history) == expected
    for key, values in hist.history.items():
        assert np.isfinite(values).all(), (key, values)
    if penalized:
        assert hist.history["penalty"][0] >= 0


def test_diffaugment_and_r1_train():
    m = build_model(
        "cgan",
        (16, 16, 1),
        num_classes=3,
        latent_dim=8,
        width=4,
        diffaugment="translation,cutout,color",
        r1_gamma=1.0,
        loss="hinge",
    )
    m.compile(jit_compile=False)
    x, y = _data(16)
    hist = m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert all(np.isfinite(v).all() for v in hist.history.values())


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


@pytest.mark.parametrize("name", ["cgan", "cvae"])
def test_keras_round_trip_keeps_training(name, tmp_path):
    m = _tiny(name, 16)
    x, y = _data(16)
    m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    m.save(path)
    r = load_generator(tmp_path)
    assert type(r) is type(m)
    assert (r.image_shape, r.num_classes, r.latent_dim) == (
        m.image_shape,
        m.num_classes,
        m.latent_dim,
    )
    assert int(r.train_steps.numpy()) == 2
    assert model_id(r) == model_id(m)
    noise, labels = (
        np.random.default_rng(0).normal(size=(3, 8)).astype("float32"),
        np.array([0, 1, 2]),
    )
    np.testing.assert_allclose(r.generate(noise, labels), m.generate(noise, labels), atol=1e-6)
    # Optimizer state survived: the slots of the reloaded optimizer match.
    opt = r.g_optimizer if name == "cgan" else r.optimizer
    ref = m.g_optimizer if name == "cgan" else m.optimizer
    for a, b in zip(opt.variables, ref.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    r.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert int(r.train_steps.numpy()) == 4
    assert model_id(r) != model_id(m)


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
