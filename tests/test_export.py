import json
import os
import subprocess
import sys
import sysconfig

import pytest

from tests.conftest import listing
from tfsynth.cli import main

# Runs in a Python where tfsynth is NOT importable: -I (no cwd, no user site,
# no PYTHONPATH) and -S (no .pth files, so no editable-install finder), with
# only the site-packages directory (TensorFlow) put back by hand.
LOAD_SCRIPT = r"""
import json, sys
sys.path.append(sys.argv[1])
try:
    import tfsynth
    has_tfsynth = True
except ImportError:
    has_tfsynth = False
import tensorflow as tf

out = {"has_tfsynth": has_tfsynth}
for key, path in (("cgan", sys.argv[2]), ("vae", sys.argv[3])):
    m = tf.saved_model.load(path)
    serve, sample = m.signatures["serving_default"], m.signatures["sample"]
    noise = tf.random.normal([5, serve.structured_input_signature[1]["noise"].shape[1]])
    if key == "cgan":
        a = serve(noise=noise, labels=tf.constant([0, 1, 2, 0, 1], tf.int64))["images"]
        s1 = sample(n=tf.constant(4), seed=tf.constant(7, tf.int64), labels=tf.constant([], tf.int64))
        s2 = sample(n=tf.constant(4), seed=tf.constant(7, tf.int64), labels=tf.constant([], tf.int64))
        s3 = sample(n=tf.constant(3), seed=tf.constant(7, tf.int64), labels=tf.constant([2, 2, 1], tf.int64))
        out["cgan_sample3_labels"] = s3["labels"].numpy().tolist()
    else:
        a = serve(noise=noise)["images"]
        s1 = sample(n=tf.constant(4), seed=tf.constant(7, tf.int64))
        s2 = sample(n=tf.constant(4), seed=tf.constant(7, tf.int64))
    out[key] = {
        "serve": [a.dtype.name, a.shape.as_list()],
        "sample": [s1["images"].dtype.name, s1["images"].shape.as_list()],
        "labels": s1["labels"].numpy().tolist(),
        "same_seed_same_images": bool(tf.reduce_all(s1["images"] == s2["images"])),
    }
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tfsynth.models import build_model

    root = tmp_path_factory.mktemp("models")
    paths = {}
    from tests.conftest import make_arrays
    from tfsynth.data import ImageDataset

    for name, kwargs in (("cgan", {"num_classes": 3}), ("vae", {})):
        m = build_model(name, (16, 16, 1), latent_dim=8, width=4, **kwargs)
        m.compile()
        if name == "cgan":  # a real (tiny) trained model: one training step
            data = ImageDataset(*make_arrays(n=4)).to_tf_dataset(batch_size=4, shuffle=False)
            m.fit(data, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        paths[name] = root / name / "model.keras"
        paths[name].parent.mkdir()
        m.save(paths[name])
    return paths


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow
def test_export_loads_with_plain_tensorflow(tmp_path, models, capsys):
    out = tmp_path / "saved_models"
    assert run_cli(capsys, "export", "--model", models["cgan"], "--out", out / "cg")[0] == 0
    # Versions auto-increment; an existing one is never replaced.
    assert run_cli(capsys, "export", "--model", models["cgan"].parent, "--out", out / "cg")[0] == 0
    assert run_cli(capsys, "export", "--model", models["vae"], "--out", out / "vae")[0] == 0
    assert sorted(p.name for p in (out / "cg").iterdir()) == ["1", "2"]
    summary = json.loads((out / "cg" / "2" / "summary.json").read_text())
    assert summary["command"] == "export" and summary["version"] == 2

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", LOAD_SCRIPT, sysconfig.get_paths()["purelib"],
         str(out / "cg" / "1"), str(out / "vae" / "1")],
        cwd=outside, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert result["has_tfsynth"] is False
    assert result["cgan"]["serve"] == ["uint8", [5, 16, 16, 1]]
    assert result["cgan"]["sample"] == ["uint8", [4, 16, 16, 1]]
    assert result["cgan"]["labels"] == [0, 1, 2, 0]
    assert result["cgan_sample3_labels"] == [2, 2, 1]
    assert result["vae"]["serve"] == ["uint8", [5, 16, 16, 1]]
    assert result["vae"]["labels"] == [0, 0, 0, 0]
    assert result["cgan"]["same_seed_same_images"] and result["vae"]["same_seed_same_images"]

    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run(
        [cli, "show", "--dir", str(out / "cg" / "1"), "--all"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "signature_def['serving_default']" in shown.stdout
    assert "signature_def['sample']" in shown.stdout
    assert "DT_UINT8" in shown.stdout


def test_export_bad_input_exits_2_and_writes_nothing(tmp_path, models, capsys):
    out = tmp_path / "saved"
    out.mkdir()
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    (tmp_path / "a_file").write_text("x")
    cases = [
        (["--model", tmp_path / "missing.keras", "--out", out / "m"], "model file not found"),
        (["--model", tmp_path / "junk.keras", "--out", out / "m"], "not a loadable tfsynth model"),
        (["--model", models["cgan"], "--out", tmp_path / "a_file"], "is not a directory"),
        (["--model", models["cgan"], "--out", out / "m", "--version", "0"], "--version"),
    ]
    for argv, message in cases:
        rc, _, err = run_cli(capsys, "export", *argv)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and message in lines[0], err
        assert listing(out) == []
    (out / "m" / "3").mkdir(parents=True)
    rc, _, err = run_cli(
        capsys, "export", "--model", models["cgan"], "--out", out / "m", "--version", "3"
    )
    assert rc == 2 and "already exists" in err
    assert listing(out) == ["m", "m/3"]


@pytest.mark.parametrize("name", ["cgan", "vae"])
def test_sample_signature_gives_the_images_of_generate(name):
    import numpy as np
    import tensorflow as tf

    from tfsynth.export import serving_module
    from tfsynth.models import build_model
    from tfsynth.models.sampling import generate_batches

    kwargs = {"num_classes": 3} if name == "cgan" else {}
    model = build_model(name, (16, 16, 1), latent_dim=8, width=4, **kwargs)
    module = serving_module(model)
    args = {"labels": tf.constant([], tf.int64)} if name == "cgan" else {}
    out = module.sample(n=tf.constant(5), seed=tf.constant(11, tf.int64), **args)
    want = next(generate_batches(model, 5, seed=11, batch_size=5))
    assert out["labels"].numpy().tolist() == want["label"].tolist()
    diff = np.abs(out["images"].numpy().astype(int) - want["image"].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float rounding at the uint8 edge only
    other = module.sample(n=tf.constant(5), seed=tf.constant(12, tf.int64), **args)
    assert not np.array_equal(other["images"].numpy(), out["images"].numpy())


DDPM_LOAD_SCRIPT = r"""
import json, sys
sys.path.append(sys.argv[1])
try:
    import tfsynth
    has_tfsynth = True
except ImportError:
    has_tfsynth = False
import tensorflow as tf

m = tf.saved_model.load(sys.argv[2])
sample = m.signatures["sample"]
none = tf.constant([], tf.int64)
s1 = sample(n=tf.constant(3), seed=tf.constant(5, tf.int64), labels=none)
s2 = sample(n=tf.constant(3), seed=tf.constant(5, tf.int64), labels=none)
s3 = sample(n=tf.constant(2), seed=tf.constant(5, tf.int64), labels=tf.constant([1, 1], tf.int64))
ops = set()
for f in sample.graph.as_graph_def().library.function:
    ops.update(n.op for n in f.node_def)
print("RESULT " + json.dumps({
    "has_tfsynth": has_tfsynth,
    "sample": [s1["images"].dtype.name, s1["images"].shape.as_list()],
    "labels": s1["labels"].numpy().tolist(),
    "labels3": s3["labels"].numpy().tolist(),
    "same_seed_same_images": bool(tf.reduce_all(s1["images"] == s2["images"])),
    "while_loop": any("While" in op for op in ops),
}))
"""


def _tiny_ddpm(num_classes=3, **kwargs):
    from tfsynth.models import build_model

    return build_model("ddpm", (16, 16, 1), num_classes, width=8, seed=1, sample_steps=3, **kwargs)


def _random_weights(model):
    # A fresh U-Net's output layer is zero; random weights make the images depend on the noise.
    import numpy as np

    rng = np.random.default_rng(0)
    weights = model.sampler.get_weights()
    model.sampler.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in weights])


@pytest.mark.slow
def test_ddpm_export_runs_ddim_from_plain_tensorflow(tmp_path):
    from tfsynth.export import export_generator

    model = _tiny_ddpm(guidance=2.0, levels=1, attention=False)  # the export, not the U-Net
    model.compile(jit_compile=False)
    _random_weights(model)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "model.keras")
    final = export_generator(tmp_path / "run", tmp_path / "saved" / "ddpm")
    summary = json.loads((final / "summary.json").read_text())
    assert (summary["sample_steps"], summary["guidance"], summary["latent_dim"]) == (3, 2.0, 256)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", DDPM_LOAD_SCRIPT, sysconfig.get_paths()["purelib"],
         str(final)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert result["has_tfsynth"] is False
    assert result["sample"] == ["uint8", [3, 16, 16, 1]]
    assert result["labels"] == [0, 1, 2] and result["labels3"] == [1, 1]
    assert result["same_seed_same_images"] and result["while_loop"]


@pytest.mark.parametrize("num_classes", [3, 0], ids=["cond", "uncond"])
def test_ddpm_sample_signature_gives_the_images_of_generate(num_classes):
    import numpy as np
    import tensorflow as tf

    from tfsynth.export import serving_module
    from tfsynth.models.sampling import generate_batches

    model = _tiny_ddpm(num_classes)
    _random_weights(model)
    module = serving_module(model)
    args = {"labels": tf.constant([], tf.int64)} if num_classes else {}
    out = module.sample(n=tf.constant(4), seed=tf.constant(11, tf.int64), **args)
    want = next(generate_batches(model, 4, seed=11, batch_size=4))
    assert out["images"].shape == (4, 16, 16, 1)
    assert out["labels"].numpy().tolist() == want["label"].tolist()
    diff = np.abs(out["images"].numpy().astype(int) - want["image"].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    other = module.sample(n=tf.constant(4), seed=tf.constant(12, tf.int64), **args)
    assert not np.array_equal(other["images"].numpy(), out["images"].numpy())
