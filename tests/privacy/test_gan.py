"""The GAN's DP-SGD step: one example moves the discriminator by at most lr * C / B."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_batch
from tfsynth.errors import ConfigError
from tfsynth.models import build_model
from tfsynth.privacy import PrivacyPlan

CLIP, LR, BATCH = 0.05, 0.1, 4


def _plan(noise=0.0):
    return PrivacyPlan(
        epsilon=None, delta=1e-5, clip=CLIP, noise_multiplier=noise, num_examples=40,
        batch_size=BATCH, physical_batch=6, steps=10,
    )  # fmt: skip


def _gan(plan):
    keras.utils.set_random_seed(0)
    gan = build_model("cgan", (16, 16, 1), 3, latent_dim=8, width=4, seed=1, ema_decay=0.0, dp=plan)
    gan.compile(d_optimizer=keras.optimizers.SGD(LR), g_optimizer=keras.optimizers.SGD(LR))
    return gan


def _step(gan, x, y, w):
    """The discriminator's weights after one train step from a copy of `gan`'s state."""
    twin = _gan(gan.dp)
    twin.set_weights(gan.get_weights())
    twin.seed_generator.state.assign(gan.seed_generator.state.value)
    twin.train_step((tf.constant(x), tf.constant(y), tf.constant(w)))
    return [v.numpy() for v in twin.discriminator.trainable_variables]


def test_each_example_moves_the_update_by_its_clipped_gradient_at_most_lr_clip_over_batch():
    gan = _gan(_plan())
    x, y = tiny_batch(n=6, num_classes=3)
    full = np.array([1, 1, 1, 1, 1, 0], "float32")
    after_all = _step(gan, x, y, full)
    disc = gan.discriminator
    for j in range(5):
        without = full.copy()
        without[j] = 0.0
        after = _step(gan, x, y, without)
        diff = [a - b for a, b in zip(after_all, after)]
        # Hand-computed: dropping example j removes -lr * clip_C(g_j) / B from the update.
        with tf.GradientTape() as tape:
            logit = disc([x[j : j + 1], y[j : j + 1].astype("int32")], training=True)
            loss = tf.nn.softplus(-logit)[0, 0]
        g = [tf.convert_to_tensor(t).numpy() for t in tape.gradient(loss, disc.trainable_variables)]
        norm = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in g))
        assert norm > CLIP  # clipping is active
        for d, a in zip(diff, g):
            np.testing.assert_allclose(d, -LR * a * (CLIP / norm) / BATCH, atol=2e-7)
        moved = np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for d in diff))
        assert moved <= LR * CLIP / BATCH * (1 + 1e-4)


def test_noise_is_added_and_config_round_trips(tmp_path):
    gan = _gan(_plan(noise=1.0))
    x, y = tiny_batch(n=6, num_classes=3)
    w = np.ones(6, "float32")
    a, b = _step(gan, x, y, w), _step(gan, x, y, w)
    # Same state, same batch: only the secret-keyed noise differs between the twins.
    assert max(float(np.max(np.abs(p - q))) for p, q in zip(a, b)) > 1e-4
    gan.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.dp == gan.dp and loaded.class_counts is None
    assert "dp" not in build_model("cgan", (16, 16, 1), 3, latent_dim=8, width=4).get_config()


def test_batch_mixing_and_penalties_are_refused():
    with pytest.raises(ConfigError, match="one critic step of the dcgan or hinge loss"):
        build_model("wgan-gp", (16, 16, 1), latent_dim=8, width=4, dp=_plan())
    from tfsynth.models.gan import GAN
    from tfsynth.models.networks import build_discriminator, build_generator

    disc = build_discriminator((16, 16, 1), width=4, norm="batch")
    with pytest.raises(ConfigError, match="mixes the examples of a batch"):
        GAN(build_generator((16, 16, 1), 8, 0, 4), disc, dp=_plan())
