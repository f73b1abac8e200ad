"""ddpm: U-Net shapes, training steps, DDIM sampling, guidance, bad input.

Its contract (config and .keras round trips, v-prediction) is in
tests/models/test_contract.py.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_arrays
from tfsynth.errors import ConfigError
from tfsynth.models import build_model, load_generator
from tfsynth.models import diffusion as dm
from tfsynth.models.diffusion import Diffusion
from tfsynth.models.sampling import noise_for
from tfsynth.models.unet import build_unet, groups_for, unet_levels


def _data(h, n=8, k=3):
    images, labels = make_arrays(n=n, h=h, w=h, num_classes=k)
    return images.astype("float32") / 127.5 - 1.0, labels


SMALL = {"levels": 1, "attention": False}  # the smallest U-Net, where the network is not under test


def _tiny(h, k=3, **kw):
    kw.setdefault("sample_steps", 3)
    m = build_model("ddpm", (h, h, 1), num_classes=k, width=8, seed=1, **kw)
    m.compile(jit_compile=False)
    return m


def _perturb(model, seed=0):
    """Random weights for the sampling network (a fresh U-Net's output layer is zero)."""
    rng = np.random.default_rng(seed)
    model.sampler.set_weights(
        [w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.sampler.get_weights()]
    )


# The default 28x28 U-Net (7x7 attention) conditional; the smallest one unconditional.
@pytest.mark.parametrize("k, unet", [(0, SMALL), (3, {})], ids=["uncond", "cond"])
@pytest.mark.parametrize("h", [28])  # 16x16: tests/models/test_contract.py
def test_ddpm_trains_two_steps(h, k, unet):
    m = _tiny(h, k, **unet)
    assert isinstance(m, Diffusion) and m.num_classes == k
    assert m.latent_dim == h * h
    x, y = _data(h)
    hist = m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert int(m.train_steps.numpy()) == 2
    assert set(hist.history) == {"loss"} and np.isfinite(hist.history["loss"]).all()
    labels = np.array([0, 1, 2, 0]) if k else None
    out = m.generate(noise_for(0, range(4), m.latent_dim), labels).numpy()
    assert out.shape == (4, h, h, 1) and out.dtype == np.float32
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0


def test_unet_sizes_and_groups():
    assert [unet_levels((s, s, 1)) for s in (16, 28, 32, 64)] == [2, 2, 3, 3]
    assert groups_for(8) == 8 and groups_for(12) == 6 and groups_for(3) == 3
    net = build_unet((32, 32, 3), num_classes=10, width=8)
    assert [i.name for i in net.inputs] == ["images", "time", "labels"]
    assert net.get_layer("label_embedding").input_dim == 11  # + the "no label" index
    out = net([np.zeros((2, 32, 32, 3), "float32"), np.zeros(2, "float32"), np.array([0, 10])])
    assert tuple(out.shape) == (2, 32, 32, 3) and out.dtype == tf.float32
    assert len(build_unet((16, 16, 1), 0, 8, attention=False).inputs) == 2


def test_loss_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (4, 16, 16, 1)).astype("float32")
    eps = rng.normal(size=x0.shape).astype("float32")
    t = np.array([0.0, 0.3, 0.7, 1.0], "float32")
    pred = rng.normal(size=x0.shape).astype("float32")
    theta = 0.008 / 1.008 * math.pi / 2 + t * (math.acos(0.02) - 0.008 / 1.008 * math.pi / 2)
    s, n = np.cos(theta)[:, None, None, None], np.sin(theta)[:, None, None, None]
    np.testing.assert_allclose(s[-1, 0, 0, 0], 0.02, rtol=1e-5)  # cosine schedule end
    x_t = s * x0 + n * eps
    np.testing.assert_allclose(dm.diffuse(x0, eps, t), x_t, rtol=1e-5, atol=1e-6)
    for prediction, want in (("eps", eps), ("v", s * eps - n * x0)):
        expected = np.mean((pred - want) ** 2)
        got = float(dm.diffusion_loss(pred, x0, eps, t, prediction))
        assert got == pytest.approx(expected, rel=1e-5)
        # The exact target recovers x0 and eps from x_t.
        x0_hat, eps_hat = dm.split(x_t, want, t, prediction)
        np.testing.assert_allclose(x0_hat, x0, atol=1e-3)
        np.testing.assert_allclose(eps_hat, eps, atol=1e-4)


def test_train_step_loss_is_the_network_loss_on_its_draws():
    # With lr 0 the weights stay put, so the logged loss is the loss of the
    # initial network on the step's own t, eps and dropped labels.
    import keras

    m = build_model("ddpm", (16, 16, 1), num_classes=3, width=8, seed=5, label_dropout=0.5)
    m.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
    _perturb(m)
    m.network.set_weights(m.sampler.get_weights())
    x, y = _data(16, n=4)
    t_seed, eps_seed, drop_seed = dm.draw_seeds(tf.identity(m.seed_generator.state))
    logs = m.train_step((tf.constant(x), tf.constant(y)))
    t = tf.random.stateless_uniform([4], seed=t_seed)
    eps = tf.random.stateless_normal(x.shape, seed=eps_seed)
    drop = tf.random.stateless_uniform([4], seed=drop_seed) < 0.5
    labels = tf.where(drop, 3, tf.constant(y, tf.int32))
    pred = m.network([dm.diffuse(x, eps, t), t, labels])
    want = np.mean((pred.numpy() - eps.numpy()) ** 2)
    assert float(logs["loss"]) == pytest.approx(want, rel=1e-4)
    # The next step draws other times (the seeds are split, not offset).
    assert not np.allclose(dm.draw_seeds(m.seed_generator.state)[0], t_seed)


def test_sampling_is_deterministic_and_guidance_matters():
    m = _tiny(16, **SMALL)
    _perturb(m)
    noise, labels = noise_for(7, range(4), m.latent_dim), np.array([0, 1, 2, 0])
    a = m.generate(noise, labels, steps=4).numpy()
    np.testing.assert_array_equal(a, m.generate(noise, labels, steps=4).numpy())
    # Batched: each row is the sample of its own noise and label.
    np.testing.assert_allclose(m.generate(noise[:2], labels[:2], steps=4), a[:2], atol=1e-4)
    other = m.generate(noise_for(8, range(4), m.latent_dim), labels, steps=4).numpy()
    assert not np.allclose(a, other)
    g0 = m.generate(noise, labels, steps=4, guidance=0).numpy()
    g1 = m.generate(noise, labels, steps=4, guidance=1).numpy()
    g2 = m.generate(noise, labels, steps=4, guidance=2).numpy()
    np.testing.assert_array_equal(g1, a)  # guidance 1 (the default) is plain conditional
    assert np.abs(g0 - g2).max() > 1e-3 and np.abs(g1 - g2).max() > 1e-3
    # Guidance 0 ignores the labels: every label gives the unconditional sample.
    np.testing.assert_allclose(
        m.generate(noise, np.array([2, 2, 2, 2]), steps=4, guidance=0), g0, atol=1e-6
    )
    # One step is x0 predicted from pure noise.
    assert m.generate(noise, labels, steps=1).shape == (4, 16, 16, 1)


def test_bad_input_raises_one_line_config_errors():
    m = _tiny(16, **SMALL)
    noise, labels = noise_for(0, range(2), m.latent_dim), np.array([0, 1])
    cases = [
        (lambda: m.generate(noise, labels, guidance=-0.5), "guidance"),
        (lambda: m.generate(noise, labels, steps=0), "steps"),
        (lambda: m.generate(noise), "labels"),
        (lambda: build_model("ddpm", (30, 30, 1), 3, width=8), "cannot be halved"),
        (lambda: build_model("ddpm", (15, 16, 1), 3, width=8), "cannot be halved"),
        (lambda: build_model("ddpm", (12, 12, 1), 3, width=8), "cannot be halved"),
        (lambda: build_unet((28, 28, 1), 3, 8, levels=3), "side 28 cannot be halved 3 times"),
        (lambda: build_model("ddpm", (16, 16, 1), 3, prediction="x0"), "prediction"),
        (lambda: build_model("ddpm", (16, 16, 1), 3, sample_steps=0), "steps"),
        (lambda: build_model("ddpm", (16, 16, 1), 3, label_dropout=1.0), "label_dropout"),
    ]
    for fn, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            fn()
        assert "\n" not in str(info.value), str(info.value)


def test_generate_and_curate_a_ddpm_run(tmp_path):
    from tests.test_curation import calibrated_classifier
    from tfsynth.generation import generate

    m = _tiny(16, 2, sample_steps=2, **SMALL)
    _perturb(m)
    m.save(tmp_path / "model.keras")
    plain = generate(tmp_path, 6, out=tmp_path / "gen", batch_size=4)
    assert plain["class_counts"] == [3, 3]
    clf, _ = calibrated_classifier(m, n=16)
    curated = generate(
        tmp_path, 6, out=tmp_path / "cur", batch_size=4, curate=True, min_confidence=0.6,
        classifier=clf,
    )  # fmt: skip
    assert curated["class_counts"] == [3, 3]


# float16 with the default U-Net: its attention softmax is where half precision bites.
@pytest.mark.parametrize(
    "policy, unet", [("mixed_float16", {}), ("mixed_bfloat16", SMALL)], ids=["f16", "bf16"]
)
def test_mixed_precision_trains_and_samples_float32(policy, unet):
    import keras

    from tfsynth.training import precision_policy

    with precision_policy(policy):
        m = _tiny(16, sample_steps=2, **unet)
        assert isinstance(m.optimizer, keras.optimizers.LossScaleOptimizer) == (
            policy == "mixed_float16"
        )
        hist = m.fit(*_data(16, n=4), batch_size=4, epochs=1, verbose=0)
        out = m.generate(noise_for(0, range(2), m.latent_dim), np.array([0, 1]))
    assert np.isfinite(hist.history["loss"]).all()
    assert out.dtype == tf.float32 and np.isfinite(out.numpy()).all()


_MIRRORED = """
import json
import numpy as np
import tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from tfsynth.models.diffusion import build_diffusion
strategy = tf.distribute.MirroredStrategy()
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
with strategy.scope():  # the smallest U-Net: the strategy, not the network, is under test
    m = build_diffusion((16, 16, 1), 2, width=8, levels=1, attention=False, sample_steps=2, seed=1)
    m.compile(jit_compile=False)
    start = [w.numpy() for w in m.ema_network.weights]
loss = m.fit(x, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0).history["loss"][-1]
def spread(ws):  # the largest difference between the two replicas' copies of a variable
    pairs = (strategy.experimental_local_results(w.value) for w in ws)
    return max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in pairs)
moved = max(float(np.abs(w.numpy() - s).max()) for w, s in zip(m.ema_network.weights, start))
out = m.generate(rng.normal(size=(2, m.latent_dim)).astype("float32"), np.array([0, 1]))
print("RESULT", json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": loss,
      "steps": int(m.train_steps.numpy()), "moved": moved, "out": float(np.abs(out).max()),
      "spread": max(spread(m.network.weights), spread(m.ema_network.weights))}))
"""


@pytest.mark.slow
def test_ddpm_trains_under_mirrored_strategy():
    """Two replicas step in sync: weights and EMA weights equal on both, the EMA moved."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run(
        [sys.executable, "-c", _MIRRORED], capture_output=True, text=True, timeout=300, env=env
    )
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout.split("RESULT", 1)[1])
    assert (result["replicas"], result["steps"]) == (2, 2) and math.isfinite(result["loss"])
    assert result["spread"] == 0.0 and result["moved"] > 0.0
    assert result["out"] <= 1.0


def test_conditional_ddpm_selects_by_label_agreement(tmp_path):
    from tests.conftest import listing
    from tfsynth.data import ImageDataset
    from tfsynth.evaluation.classifier import build_classifier
    from tfsynth.training import train

    def data(k, seed=0):
        images, labels = make_arrays(n=8, num_classes=k, seed=seed)
        return ImageDataset(images, labels, class_names=["a", "b"][:k])

    clf = build_classifier((16, 16, 1), 2, width=4, seed=3)
    kw = dict(steps=2, batch_size=4, width=4, verbose=0, jit_compile=False, select="agreement")
    s = train(data(2), "ddpm", out=tmp_path / "c", val=data(2, 1), classifier=clf,
              sample_steps=1, guidance=2.0, **kw).summary  # fmt: skip
    assert s["val_select"] == "agreement" and 0 <= s["val_label_agreement"] <= 1
    saved = load_generator(tmp_path / "c")
    assert (saved.sample_steps, saved.guidance) == (1, 2.0)
    with pytest.raises(ConfigError, match="--select agreement: needs a class-conditional"):
        train(data(1), "ddpm", out=tmp_path / "u", val=data(1, 1), **kw)
    with pytest.raises(ConfigError, match="sample_steps, guidance: set a ddpm's"):
        train(data(2), "cgan", out=tmp_path / "g", sample_steps=3, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert listing(tmp_path / "c")  # the finished run only


def test_set_sampling_checks_and_keeps_what_is_not_given():
    m = _tiny(16, **SMALL)
    assert m.set_sampling(guidance=1.5) is m and (m.sample_steps, m.guidance) == (3, 1.5)
    for bad in ({"steps": 0}, {"guidance": -1.0}, {"guidance": float("nan")}):
        with pytest.raises(ConfigError):
            m.set_sampling(**bad)
    assert (m.sample_steps, m.guidance) == (3, 1.5)
    assert dm.Diffusion.from_config(m.get_config()).guidance == 1.5
