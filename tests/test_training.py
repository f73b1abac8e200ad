"""training.train / training.generate: run dir, TensorBoard, resume, NaN, strategies, precision."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tests.helpers import max_abs_diff
from tfsynth.data import ImageDataset, load_dataset
from tfsynth.errors import ConfigError, DataError
from tfsynth.training import generate, train

REPO = Path(__file__).resolve().parents[1]
TINY = {"width": 4, "latent_dim": 8, "verbose": 0, "jit_compile": False}


def _data(n=16, h=16, k=3):
    images, labels = make_arrays(n=n, h=h, w=h, num_classes=k)
    return ImageDataset(images, labels, class_names=["a", "b", "c"][:k], name="tiny")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "cgan"
    result = train(_data(), "cgan", epochs=2, out=out, batch_size=4, seed=0, **TINY)
    return out, result.summary, result


def test_train_writes_run_directory(trained):
    out, summary, _ = trained
    assert (out / "model.keras").is_file()
    assert not (out / "checkpoint").exists()
    assert (out / "samples" / "epoch_001.png").is_file() and (
        out / "samples" / "final.png"
    ).is_file()
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["command"] == "train" and on_disk["steps"] == 8 == summary["steps"]
    assert on_disk["images_per_second"] > 0
    assert np.isfinite(on_disk["final.d_loss"]) and np.isfinite(on_disk["final.g_loss"])
    assert not any(".tmp-" in p for p in listing(out))


def test_tensorboard_has_scalars_and_image_grids(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _ = trained
    samples = EventAccumulator(str(out / "tensorboard" / "samples"), size_guidance={"images": 0})
    samples.Reload()
    # tf.summary.image writes a tensor summary with the image plugin.
    tags = samples.Tags()
    assert "fixed_noise_samples" in tags["tensors"], tags
    events = samples.Tensors("fixed_noise_samples")
    assert [e.step for e in events] == [1, 2]
    import tensorflow as tf

    png = events[-1].tensor_proto.string_val[2]
    img = tf.io.decode_png(png).numpy()
    assert img.shape[0] >= 3 * 16  # one row per class (3 classes)
    scalars = EventAccumulator(str(out / "tensorboard" / "train"))
    scalars.Reload()
    assert {"epoch_d_loss", "epoch_g_loss"} <= set(scalars.Tags()["tensors"])


def test_generate_dataset_dir_same_seed_same_images(trained, tmp_path):
    out, _, _ = trained
    m1 = generate(out, 10, labels="2,0", seed=4, out=tmp_path / "g1")
    generate(out / "model.keras", 10, labels="2,0", seed=4, out=tmp_path / "g2", batch_size=3)
    assert m1["num_examples"] == 10 and m1["class_counts"] == [5, 0, 5]
    a, b = load_dataset(str(tmp_path / "g1")), load_dataset(str(tmp_path / "g2"))
    np.testing.assert_array_equal(a.images, b.images)
    assert a.labels.tolist() == [2, 0] * 5
    assert a.extras["gen_index"].tolist() == list(range(10))
    assert a.class_names == ["a", "b", "c"]
    assert json.loads((tmp_path / "g1" / "summary.json").read_text())["command"] == "generate"
    c = load_dataset(
        str(generate(out, 10, labels="2,0", seed=5, out=tmp_path / "g3") and tmp_path / "g3")
    )
    assert not np.array_equal(a.images, c.images)


def test_generate_bad_input_leaves_nothing(trained, tmp_path):
    out, _, _ = trained
    with pytest.raises(ConfigError, match="labels"):
        generate(out, 4, labels="x", out=tmp_path / "g")
    with pytest.raises(ConfigError, match="labels: values must lie in"):
        generate(out, 4, labels=[0, 7, 1, 1], out=tmp_path / "g")
    with pytest.raises(DataError, match="model file not found"):
        generate(tmp_path, 4, out=tmp_path / "g")
    with pytest.raises(ConfigError, match="num_examples: expected a positive integer"):
        generate(out, 0, out=tmp_path / "g")
    assert listing(tmp_path) == []


def test_train_bad_input(tmp_path, trained):
    with pytest.raises(ConfigError, match="model: expected one of"):
        train(_data(), "gan", epochs=1, out=tmp_path / "r", **TINY)
    with pytest.raises(DataError, match="fewer than one batch"):
        train(_data(n=3), "dcgan", epochs=1, out=tmp_path / "r", batch_size=4, **TINY)
    with pytest.raises(ConfigError, match="precision"):
        train(
            _data(),
            "dcgan",
            epochs=1,
            out=tmp_path / "r",
            batch_size=4,
            precision="fp8",
            **TINY,
        )
    with pytest.raises(DataError, match="already exists"):
        train(_data(), "dcgan", epochs=1, out=trained[0], batch_size=4, **TINY)
    assert listing(tmp_path) == []


class _PoisonAt(keras.callbacks.Callback):
    """Writes NaN into the discriminator after `step` steps."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.train_steps.numpy()) == self.step:
            w = self.model.discriminator.trainable_weights[0]
            w.assign(np.full(w.shape, np.nan, "float32"))


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    s = train(
        _data(),
        "dcgan",
        epochs=3,
        out=tmp_path / "r",
        batch_size=4,
        checkpoint_every=2,
        callbacks=[_PoisonAt(6)],
        **TINY,
    ).summary
    assert s["terminated_on_nan"] and s["steps"] == 6
    from tfsynth.models import load_generator

    m = load_generator(tmp_path / "r")
    assert int(m.train_steps.numpy()) == 6
    assert all(np.isfinite(w.numpy()).all() for w in m.weights)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(precision, tmp_path):
    s = train(
        _data(n=8),
        "dcgan",
        epochs=1,
        out=tmp_path / "r",
        batch_size=4,
        precision=precision,
        **TINY,
    ).summary
    assert s["steps"] == 2 and np.isfinite(s["final"]["g_loss"])
    from tfsynth.models import load_generator

    m = load_generator(tmp_path / "r")
    assert m.generator.layers[2].compute_dtype == precision.split("_")[1]
    assert isinstance(m.g_optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "mixed_float16"
    )
    assert isinstance(m.d_optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "mixed_float16"
    )
    assert keras.config.dtype_policy().name == "float32"  # restored


# -- subprocess tests: SIGKILL + resume, MirroredStrategy, MultiWorkerMirroredStrategy -------

_SCRIPT = """
import os, sys, json, signal
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
import numpy as np
import tensorflow as tf
cfg = json.loads(sys.argv[1])
if cfg.get("cpus"):
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * cfg["cpus"])
import keras
from tfsynth.data import ImageDataset
from tfsynth.training import train

class KillAt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.train_steps.numpy()) == cfg["kill_at"]:
            os.kill(os.getpid(), signal.SIGKILL)

rng = np.random.default_rng(0)
ds = ImageDataset(rng.integers(0, 256, (cfg["n"], 16, 16, 1), dtype=np.uint8), np.arange(cfg["n"]) % 2)
cbs = [KillAt()] if cfg.get("kill_at") else []
s = train(ds, cfg["model"], epochs=cfg["epochs"], out=cfg["out"], batch_size=cfg["batch"], width=4,
          latent_dim=8, verbose=0, jit_compile=False, checkpoint_every=cfg.get("every"),
          strategy=cfg.get("strategy"), diffaugment=cfg.get("diffaugment"), callbacks=cbs).summary
print("RESULT", json.dumps({"steps": s["steps"], "resumed": s["resumed_from_step"],
      "replicas": s["num_replicas"], "d_loss": s["final"].get("d_loss")}))
"""


def _start(cfg, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, json.dumps(cfg)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc, check=True):
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
        return json.loads(p.stdout.split("RESULT", 1)[1])
    return p


def _run(cfg, env=None, check=True):
    return _result(_start(cfg, env), check)


def _script_data(n):
    """The dataset _SCRIPT trains on, rebuilt in this process."""
    rng = np.random.default_rng(0)
    return ImageDataset(rng.integers(0, 256, (n, 16, 16, 1), dtype=np.uint8), np.arange(n) % 2)


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path):
    # 26 images, batch 4: 6 steps per epoch (2 images dropped), 2 epochs, a checkpoint
    # every 2 steps. One run is killed three times: mid-epoch 1 (resumes from step 2),
    # just after epoch 1 ended (from 6) and late in epoch 2 (from 10), then resumed to
    # the end. It must equal an uninterrupted run exactly: weights, EMA, seed streams
    # (noise and DiffAugment) and optimizer slots.
    cfg = {
        "model": "cgan",
        "n": 26,
        "batch": 4,
        "epochs": 2,
        "every": 2,
        "diffaugment": "translation,cutout,color",
        "out": str(tmp_path / "r"),
    }
    options = {
        "epochs": 2,
        "batch_size": 4,
        "checkpoint_every": 2,
        "diffaugment": cfg["diffaugment"],
    }
    ckpt = tmp_path / "r" / "checkpoint" / "state.json"
    for i, (kill_at, resumes_from) in enumerate([(3, 2), (7, 6), (11, 10)]):
        proc = _start({**cfg, "kill_at": kill_at})
        if i == 0:  # the uninterrupted run, here while the first one runs
            fresh = train(_script_data(26), "cgan", out=tmp_path / "f", **options, **TINY).summary
        killed = _result(proc, check=False)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert json.loads(ckpt.read_text())["step"] == resumes_from
    assert not (tmp_path / "r" / "model.keras").exists()
    resumed = train(_script_data(26), "cgan", out=tmp_path / "r", **options, **TINY).summary
    assert (resumed["resumed_from_step"], resumed["steps"], fresh["steps"]) == (10, 12, 12)
    assert not (tmp_path / "r" / "checkpoint").exists()
    a, b = (keras.saving.load_model(tmp_path / d / "model.keras") for d in ("r", "f"))
    assert max_abs_diff(a, b) == 0.0


@pytest.mark.slow
def test_mirrored_strategy_two_cpu_devices(tmp_path):
    r = _run(
        {
            "model": "cgan",
            "n": 16,
            "batch": 8,
            "epochs": 1,
            "cpus": 2,
            "strategy": "mirrored",
            "out": str(tmp_path / "r"),
        }
    )
    assert r["replicas"] == 2 and r["steps"] == 2 and np.isfinite(r["d_loss"])


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_two_local_workers(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        cfg = {
            "model": "dcgan",
            "n": 16,
            "batch": 8,
            "epochs": 1,
            "every": 1,
            "strategy": "multiworker",
            "out": str(tmp_path / "r"),
        }
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": i}}
        procs.append(_start(cfg, {"TF_CONFIG": json.dumps(tf_config)}))
    outs = [_result(p) for p in procs]
    assert [o["steps"] for o in outs] == [2, 2]
    assert all(o["replicas"] == 2 for o in outs)
    assert (tmp_path / "r" / "model.keras").is_file()  # written by the chief only
    assert (
        json.loads((tmp_path / "r" / "summary.json").read_text())["strategy"]
        == "MultiWorkerMirroredStrategy"
    )


def test_train_takes_a_config_and_returns_the_kept_model(trained, tmp_path):
    from tfsynth.config import FitConfig

    out, summary, result = trained
    # The returned model is the one written to model.keras, weight for weight.
    on_disk = keras.saving.load_model(out / "model.keras")
    assert result.out == out and max_abs_diff(result.model, on_disk) == 0.0
    assert int(result.model.train_steps.numpy()) == summary["steps"] == 8
    cfg = FitConfig("cgan", epochs=2, batch_size=4, seed=0, width=4, latent_dim=8)
    again = train(_data(), cfg, out=tmp_path / "c", verbose=0, jit_compile=False)
    assert max_abs_diff(again.model, on_disk) == 0.0  # the same options as keywords
    assert again.summary["config"]["batch_size"] == 4 and cfg.jit_compile == "auto"
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) out_dir \(the run directory is `out`\)"
    ):
        train(_data(), cfg, out=tmp_path / "d", out_dir=tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_short_epochs_do_per_epoch_work_once_per_min_epoch_steps(tmp_path, monkeypatch):
    # 6 epochs of 1 step with the work period at 3 steps: grids and epoch-end
    # checkpoints at epochs 1 (first), 4 (3 steps on) and 6 (last), not every epoch.
    import tfsynth.training as training

    monkeypatch.setattr(training.EpochWork.__init__, "__defaults__", (3,))
    saves = []
    real_save = training.Checkpoint._save
    monkeypatch.setattr(
        training.Checkpoint,
        "_save",
        lambda self: (saves.append(int(self.model.train_steps.numpy())), real_save(self))[1],
    )
    out = tmp_path / "run"
    train(_data(n=4), "cgan", epochs=6, out=out, batch_size=4, seed=0, **TINY)
    grids = sorted(p.name for p in (out / "samples").glob("epoch_*.png"))
    assert grids == ["epoch_001.png", "epoch_004.png", "epoch_006.png"]
    assert sorted(set(saves)) == [1, 4, 6]
