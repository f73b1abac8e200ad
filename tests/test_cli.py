import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.cli import main
from tfsynth.data import load_dataset


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_info_json(capsys):
    rc, out, _ = run_cli(capsys, "data", "info", "mnist-10k", "--json")
    info = json.loads(out)
    assert rc == 0
    assert (info["num_examples"], info["shape"], info["num_classes"]) == (10000, [28, 28, 1], 10)


def test_info_table(capsys):
    rc, out, _ = run_cli(capsys, "data", "info", "mnist-10k[:100]")
    assert rc == 0 and "100 images, shape 28x28x1, 10 classes" in out


def test_preview(tmp_path, capsys):
    rc, out, _ = run_cli(
        capsys, "data", "preview", "mnist-10k", "--out", str(tmp_path / "g.png"), "-n", "20"
    )
    assert rc == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convert_npz_and_dir(tmp_path, capsys):
    assert (
        run_cli(capsys, "data", "convert", "mnist-10k[:50]", "--out", str(tmp_path / "a.npz"))[0]
        == 0
    )
    assert (
        run_cli(capsys, "data", "convert", "mnist-10k[:50]", "--out", str(tmp_path / "d"))[0] == 0
    )
    a = load_dataset(f"npz:{tmp_path / 'a.npz'}")
    d = load_dataset(str(tmp_path / "d"))
    np.testing.assert_array_equal(a.images, d.images)
    assert a.class_names == d.class_names


def _bad_inputs(tmp_path):
    images, labels = make_arrays(n=6)
    np.savez(tmp_path / "noimages.npz", labels=labels)
    np.savez(tmp_path / "pickled.npz", images=np.array([None], dtype=object), labels=np.zeros(1))
    np.savez(tmp_path / "mismatch.npz", images=images, labels=labels[:3])
    np.savez(tmp_path / "range.npz", images=images, labels=labels, class_names=np.array(["a"]))
    f = images.astype(np.float32)
    f[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", images=f, labels=labels)
    (tmp_path / "trunc").mkdir()
    (tmp_path / "trunc" / "x-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")
    (tmp_path / "trunc" / "x-labels-idx1-ubyte").write_bytes(
        b"\x00\x00\x08\x01\x00\x00\x00\x02\x00\x01"
    )
    return [
        ("bogus-spec", "unknown dataset spec"),
        (f"npz:{tmp_path}/missing.npz", "file not found"),
        (f"npz:{tmp_path}/noimages.npz", "missing array(s) images"),
        (f"npz:{tmp_path}/pickled.npz", "pickled Python objects"),
        (f"npz:{tmp_path}/mismatch.npz", "6 images but 3 labels"),
        (f"npz:{tmp_path}/range.npz", "labels out of range"),
        (f"npz:{tmp_path}/nan.npz", "NaN"),
        (f"idx:{tmp_path}/trunc", "truncated IDX header"),
        ("mnist-10k[5:5]", "empty"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    spec, message = _bad_inputs(inputs)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for argv in (
        ["data", "info", spec],
        ["data", "convert", spec, "--out", str(out_dir / "x.npz")],
        ["data", "convert", spec, "--out", str(out_dir / "d")],
        ["data", "preview", spec, "--out", str(out_dir / "g.png")],
    ):
        rc, out, err = run_cli(capsys, *argv)
        assert rc == 2, argv
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tfsynth: error: "), err
        assert message in lines[0]
        assert "Traceback" not in err
        assert listing(out_dir) == []


def test_convert_refuses_existing_output(tmp_path, capsys):
    (tmp_path / "a.npz").write_bytes(b"keep")
    rc, _, err = run_cli(
        capsys, "data", "convert", "mnist-10k[:5]", "--out", str(tmp_path / "a.npz")
    )
    assert rc == 2 and "already exists" in err
    assert (tmp_path / "a.npz").read_bytes() == b"keep"


@pytest.mark.slow
def test_console_script_offline_tfds_and_version(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "tfsynth")
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    v = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert v.returncode == 0 and v.stdout.startswith("tfsynth ")
    r = subprocess.run(
        [exe, "data", "info", "tfds:mnist"], capture_output=True, text=True, env=env, timeout=120
    )
    # This machine has no network: one clear line, exit 2, and TF's start-up noise hidden.
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "tfds:mnist" in r.stderr and "network" in r.stderr
    r = subprocess.run(
        [exe, "data", "info", "mnist-10k", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0 and json.loads(r.stdout)["num_examples"] == 10000
    assert r.stderr == ""


@pytest.fixture(scope="module")
def curation_run(tmp_path_factory):
    """A cgan run dir with model.keras and classifier.keras, one without a classifier, real data."""
    from tests.test_curation import calibrated_classifier
    from tfsynth.models import build_model

    root = tmp_path_factory.mktemp("curation_cli")
    model = build_model("cgan", (16, 16, 1), num_classes=2, latent_dim=8, width=4, seed=1)
    model.compile()
    for name in ("run", "bare"):
        (root / name).mkdir()
        model.save(root / name / "model.keras")
    calibrated_classifier(model)[0].save(root / "run" / "classifier.keras")
    images, labels = make_arrays(n=20, num_classes=2)
    np.savez(root / "real.npz", images=images, labels=labels)
    return root


def test_generate_curate_writes_kept_fractions(tmp_path, capsys, curation_run):
    argv = ["generate", "--model", str(curation_run / "run"), "-n", "6", "--curate"]
    rc, out, err = run_cli(capsys, *argv, "--min-confidence", "0.8", "--out", str(tmp_path / "g"))
    assert rc == 0, err
    assert "wrote 6 images" in out and "curated: kept" in out
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert summary["min_confidence"] == 0.8 and 0 < summary["kept_fraction"] <= 1
    assert set(load_dataset(str(tmp_path / "g")).extras) == {"gen_seed", "gen_index", "confidence"}


CURATION_BAD = [
    (["generate", "--curate", "--min-confidence", "1.5"], "--min-confidence: expected a number"),
    (["generate", "--min-confidence", "0"], "--min-confidence: expected a number"),
    (["generate", "--curate", "--classifier", "{d}/none.keras"], "classifier file not found"),
    (["generate", "--curate", "--model", "{d}/bare"], "bare/classifier.keras: classifier file"),
    (["fuse", "--gen", "{d}/run", "--min-confidence", "1.5"], "--min-confidence: expected"),
    (["fuse", "--gen", "{d}/run", "--min-confidence", "-1"], "--min-confidence: expected"),
    (["fuse", "--gen", "{d}/run", "--min-confidence", "0.8", "--classifier", "{d}/none.keras"],
     "none.keras: classifier file not found"),
    (["fuse", "--gen", "{d}/bare", "--min-confidence", "0.8"], "classifier file not found"),
    (["fuse", "--min-confidence", "0.8"], "--min-confidence needs a --gen model"),
    (["fuse", "--gen", "{d}/run", "--classifier", "{d}/run/classifier.keras"], "give both"),
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(CURATION_BAD)))
def test_curation_bad_input_exits_2_one_line_nothing_written(tmp_path, capsys, curation_run, case):
    argv, message = CURATION_BAD[case]
    argv = [a.replace("{d}", str(curation_run)) for a in argv]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if argv[0] == "generate":
        if "--model" not in argv:
            argv += ["--model", str(curation_run / "run")]
        argv += ["-n", "4", "--out", str(out_dir / "g")]
    else:
        argv += ["--real", f"npz:{curation_run / 'real.npz'}", "--out", str(out_dir / "d")]
    rc, _, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("tfsynth: error: "), err
    assert message in lines[0]
    assert listing(out_dir) == []
