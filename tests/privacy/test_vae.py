"""The VAE's DP-SGD step: the update is the mean of clipped per-example gradients of the whole loss."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_batch
from tfsynth.data import ImageDataset
from tfsynth.errors import ConfigError
from tfsynth.models import _trainer, build_model
from tfsynth.privacy import DPConfig, PrivacyPlan

CLIP, LR, BATCH, BETA = 0.5, 0.1, 4, 2.0


def _plan(noise=0.0):
    return PrivacyPlan(
        epsilon=None, delta=1e-5, clip=CLIP, noise_multiplier=noise, num_examples=40,
        batch_size=BATCH, physical_batch=6, steps=10,
    )  # fmt: skip


def _vae(plan, name="cvae"):
    keras.utils.set_random_seed(0)
    k = 3 if name == "cvae" else 0
    vae = build_model(name, (16, 16, 1), k, latent_dim=4, width=4, seed=1, beta=BETA, dp=plan)
    vae.compile(optimizer=keras.optimizers.SGD(LR), jit_compile=False)
    return vae


def _step(vae, x, y, w):
    """All trainable weights after one train step from a copy of `vae`'s state."""
    twin = _vae(vae.dp, "cvae" if vae.num_classes else "vae")
    twin.set_weights(vae.get_weights())
    twin.seed_generator.state.assign(vae.seed_generator.state.value)
    twin.train_step((tf.constant(x), tf.constant(y), tf.constant(w)))
    return [v.numpy() for v in twin.trainable_variables]


def _example_gradient(vae, x, y, eps):
    """The gradient of one example's loss (reconstruction + beta * KL), written out by hand."""
    net = vae._with_labels
    with tf.GradientTape() as tape:
        mean, log_var = vae.encoder(net(x[None], y), training=True)
        z = mean + tf.exp(0.5 * log_var) * eps[None]
        recon = vae.decoder(net(z, y), training=True)
        p = tf.clip_by_value((recon + 1.0) / 2.0, 1e-6, 1.0 - 1e-6)
        t = (x[None] + 1.0) / 2.0
        rec = -tf.reduce_sum(t * tf.math.log(p) + (1.0 - t) * tf.math.log(1.0 - p))
        kl = -0.5 * tf.reduce_sum(1.0 + log_var - tf.square(mean) - tf.exp(log_var))
        loss = rec + BETA * kl
    grads = tape.gradient(loss, vae.trainable_variables)
    return [tf.convert_to_tensor(g).numpy().astype(np.float64) for g in grads]


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_update_is_the_mean_of_clipped_whole_loss_gradients_and_one_example_moves_it_lr_c_over_b(
    name,
):
    vae = _vae(_plan(), name)
    x, y = tiny_batch(n=6, num_classes=3)
    w = np.array([1, 1, 1, 1, 1, 0], "float32")
    before = [v.numpy().astype(np.float64) for v in vae.trainable_variables]
    after_all = _step(vae, x, y, w)
    # The step's reparameterization noise, drawn as the step draws it.
    probe = keras.random.SeedGenerator(1)
    probe.state.assign(vae.seed_generator.state.value)
    eps = tf.random.stateless_normal([6, 4], seed=_trainer.replica_seed(probe.next())).numpy()
    labels = tf.constant(y.astype("int32"))
    clipped = []
    for j in range(5):
        g = _example_gradient(vae, tf.constant(x[j]), labels[j : j + 1], tf.constant(eps[j]))
        norm = np.sqrt(sum(np.sum(a**2) for a in g))
        assert norm > CLIP  # clipping is active, so a missing clip would change the update
        clipped.append([a * (CLIP / norm) for a in g])
    for i, (b, a) in enumerate(zip(before, after_all)):
        expected = b - LR * sum(c[i] for c in clipped) / BATCH  # divided by the expected batch
        np.testing.assert_allclose(a, expected, atol=2e-6)
    for j in range(5):
        without = w.copy()
        without[j] = 0.0
        diff = [a - b for a, b in zip(after_all, _step(vae, x, y, without))]
        moved = np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for d in diff))
        assert moved <= LR * CLIP / BATCH * (1 + 1e-3)
        assert moved >= 0.99 * LR * CLIP / BATCH  # a clipped example moves it by exactly that


def test_noise_reaches_every_network_and_the_config_round_trips(tmp_path):
    vae = _vae(_plan(noise=1.0))
    x, y = tiny_batch(n=6, num_classes=3)
    w = np.ones(6, "float32")
    a, b = _step(vae, x, y, w), _step(vae, x, y, w)
    # Same state, same batch: only the secret-keyed noise differs, in encoder and decoder.
    enc = {id(v) for v in vae.encoder.trainable_variables}
    nets = ["encoder" if id(v) in enc else "decoder" for v in vae.trainable_variables]
    moved = {n for n, p, q in zip(nets, a, b) if np.max(np.abs(p - q)) > 1e-4}
    assert moved == {"encoder", "decoder"}
    vae.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.dp == vae.dp and loaded.class_counts is None
    assert "dp" not in build_model("vae", (16, 16, 1), latent_dim=4, width=4).get_config()


def test_batch_normalization_in_either_network_is_refused():
    from tfsynth.models.networks import build_decoder, build_encoder, build_generator
    from tfsynth.models.vae import VAE

    enc = build_encoder((16, 16, 1), 4, 0, 4)
    dec = build_generator((16, 16, 1), 4, 0, 4, norm="batch", name="decoder")
    with pytest.raises(ConfigError, match="the decoder's .* mixes the examples of a batch"):
        VAE(enc, dec, dp=_plan())
    VAE(enc, build_decoder((16, 16, 1), 4, 0, 4), dp=_plan())  # the tfsynth networks pass


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_dp_vae_trains_via_train_and_records_its_epsilon(tmp_path, name):
    from tfsynth.training import FitConfig, train

    x, y = tiny_batch(n=40, num_classes=2)
    data = ImageDataset(((x + 1) * 127.5).round().astype(np.uint8), y)
    cfg = FitConfig(name, steps=2, batch_size=4, width=4, latent_dim=4, jit_compile=False)
    result = train(data, cfg, out=tmp_path / "run", verbose=0, dp=DPConfig(epsilon=5, delta=1e-3))
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["steps"] == 2 and result.model.dp is not None
    plan = result.model.dp
    assert s["dp_epsilon"] == pytest.approx(plan.epsilon_after(2)) and 0 < s["dp_epsilon"] <= 5
    assert s["dp_noise_multiplier"] == plan.noise_multiplier > 0
    assert result.model.class_counts is None
