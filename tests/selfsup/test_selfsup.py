"""tfsynth.selfsup: NT-Xent against NumPy, the SimCLR contract, resume, k-NN, the probe."""

import json
import warnings

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.data import ImageDataset
from tfsynth.errors import ConfigError
from tfsynth.selfsup import (
    SSLConfig,
    build_simclr,
    knn_accuracy,
    knn_proba,
    linear_probe,
    load_ssl,
    nt_xent_loss,
    train_ssl,
)
from tfsynth.selfsup.train import view_batches

TINY = dict(epochs=2, batch_size=4, width=2, feature_dim=4, projection_dim=2)


def _nt_xent_numpy(z1, z2, t):
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    sim = z @ z.T / t
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [sim[i, m] for m in range(2 * n) if m != i]
        total += -sim[i, j] + np.log(np.sum(np.exp(others)))
    return total / (2 * n)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_matches_numpy(t):
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    got = float(nt_xent_loss(z1.astype("float32"), z2.astype("float32"), t))
    assert got == pytest.approx(_nt_xent_numpy(z1, z2, t), rel=1e-4)


def test_simclr_two_steps_and_keras_round_trip_keeps_training(tmp_path):
    import keras
    import tensorflow as tf

    model = build_simclr((16, 16, 1), width=2, feature_dim=4, projection_dim=2, temperature=0.3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    views = tf.data.Dataset.from_tensor_slices((x, x[::-1])).batch(4)
    model.fit(views, epochs=1, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations) == 2
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    assert back.get_config()["temperature"] == 0.3 and int(back.optimizer.iterations) == 2
    np.testing.assert_allclose(back(x), model(x), atol=1e-5)
    cfg = model.get_config()
    assert type(model).from_config(cfg).get_config()["temperature"] == cfg["temperature"]
    back.fit(views, epochs=1, verbose=0, shuffle=False)
    assert int(back.optimizer.iterations) == 4


def test_views_differ_and_are_deterministic():
    images, _ = make_arrays(n=8)
    cfg = SSLConfig(**TINY)
    a = [(v1.numpy(), v2.numpy()) for v1, v2 in view_batches(images, cfg, 0)]
    b = [(v1.numpy(), v2.numpy()) for v1, v2 in view_batches(images, cfg, 0)]
    c = [v1.numpy() for v1, _ in view_batches(images, cfg, 1)]
    assert len(a) == 2 and a[0][0].shape == (4, 16, 16, 1)
    assert np.array_equal(a[0][0], b[0][0]) and not np.array_equal(a[0][0], a[0][1])
    assert not np.array_equal(a[0][0], c[0]) and a[0][0].min() >= -1 and a[0][0].max() <= 1


def test_train_ssl_resume_equals_uninterrupted(tmp_path):
    images, labels = make_arrays(n=8)
    data = ImageDataset(images)  # unlabelled
    probe = ImageDataset(images, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Keras' "shuffle=True ... ignored"
        full = train_ssl(SSLConfig(**TINY), tmp_path / "full", data=data, probe=probe)
    assert full["steps"] == 4 and "knn_accuracy" in full and not full["labels_used"]

    # A run killed after epoch 1's checkpoint, then run again: continues from it.
    def killed(line):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ssl(SSLConfig(**TINY), tmp_path / "part", data=data, probe=probe, log=killed)
    assert json.loads((tmp_path / "part" / "checkpoint" / "state.json").read_text())["epoch"] == 1
    resumed = train_ssl(SSLConfig(**TINY), tmp_path / "part", data=data, probe=probe)
    assert resumed["resumed_from_epoch"] == 1
    a, b = load_ssl(tmp_path / "full"), load_ssl(tmp_path / "part")
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa.numpy(), wb.numpy(), atol=1e-5)
    assert (tmp_path / "full" / "tensorboard").is_dir()
    with pytest.raises(Exception, match="finished run"):
        train_ssl(SSLConfig(**TINY), tmp_path / "full", data=data)


def test_resume_with_other_settings_is_refused(tmp_path):
    data = ImageDataset(make_arrays(n=8)[0])
    ckpt = tmp_path / "r" / "checkpoint"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"epoch": 1, "config": {"epochs": 9}}))
    with pytest.raises(ConfigError, match="other settings"):
        train_ssl(SSLConfig(**TINY), tmp_path / "r", data=data)


def test_config_validation():
    with pytest.raises(ConfigError, match="temperature"):
        SSLConfig(temperature=0).validate()
    with pytest.raises(ConfigError, match="unknown field"):
        SSLConfig.from_dict({"epochs": 1, "bogus": 2})


def test_knn_and_linear_probe_on_separable_features():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 4)
    labels = np.arange(30) % 3
    f = centers[labels] + 0.05 * rng.normal(size=(30, 4))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    assert knn_accuracy(f.astype(np.float32), labels, 3, k=5) == 1.0
    p = knn_proba(f, labels, f[:3], 3, k=4)
    assert p.shape == (3, 3) and np.allclose(p.sum(1), 1)
    assert (linear_probe(f, labels, 3)(f).argmax(1) == labels).all()


def test_ssl_cli_and_bad_input(tmp_path, capsys):
    from tfsynth.cli import main

    images, _ = make_arrays(n=8)
    np.savez(tmp_path / "u.npz", images=images)
    argv = ["ssl", "--data", f"npz:{tmp_path / 'u.npz'}", "--epochs", "1", "--batch-size", "4"]
    argv += ["--width", "2", "--feature-dim", "4", "--projection-dim", "2", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "s")]) == 0
    assert "wrote" in capsys.readouterr().out
    before = listing(tmp_path)
    assert main([*argv, "--probe", f"npz:{tmp_path / 'u.npz'}", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unlabelled" in err[0] and listing(tmp_path) == before
