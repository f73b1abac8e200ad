"""`tfsynth train` and `tfsynth generate` from the command line."""

import json

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.cli import main
from tfsynth.data import load_dataset


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    images, labels = make_arrays(n=16, h=16, w=16, num_classes=2)
    path = tmp_path_factory.mktemp("data") / "d.npz"
    np.savez(path, images=images, labels=labels)
    return path


@pytest.mark.slow
def test_train_then_generate(npz, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", f"npz:{npz}", "--model", "cvae", "--epochs", "1", "--out", str(run)]
    args += ["--batch-size", "8", "--width", "4", "--latent-dim", "4", "--quiet", "--no-xla"]
    assert main(args) == 0
    assert "trained cvae for 2 steps" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["images_per_second"] > 0 and summary["model"] == "cvae"
    for name in ("a", "b"):
        gen = [
            "generate",
            "--model",
            str(run / "model.keras"),
            "-n",
            "6",
            "--labels",
            "1",
            "--seed",
            "3",
        ]
        assert main([*gen, "--out", str(tmp_path / name)]) == 0
    a, b = load_dataset(str(tmp_path / "a")), load_dataset(str(tmp_path / "b"))
    np.testing.assert_array_equal(a.images, b.images)
    assert a.labels.tolist() == [1] * 6
    # Same out again: refused with one line, exit 2.
    assert main([*gen, "--out", str(tmp_path / "a")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_bad_input(npz, tmp_path, capsys):
    base = ["train", "--model", "cgan", "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]
    assert main([*base, "--data", f"npz:{tmp_path}/missing.npz"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfsynth: error:") and "missing.npz" in err and err.count("\n") == 1
    assert main([*base, "--data", f"npz:{npz}", "--batch-size", "64"]) == 2
    assert "fewer than one batch" in capsys.readouterr().err
    assert (
        main(["generate", "--model", str(tmp_path), "-n", "3", "--out", str(tmp_path / "g")]) == 2
    )
    assert "model file not found" in capsys.readouterr().err
    assert listing(tmp_path) == []
