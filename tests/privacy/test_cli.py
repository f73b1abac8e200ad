"""`tfsynth train --dp-*`: a private run end to end, and bad input (exit 2, one line)."""

import json

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    images, labels = make_arrays(n=40, num_classes=2, seed=0)
    path = tmp_path_factory.mktemp("dp-data") / "tiny.npz"
    np.savez(path, images=images, labels=labels)
    return f"npz:{path}"


def _train(data, out, *flags):
    return ["train", "--data", data, "--model", "cgan", "--batch-size", "4", "--width", "4"] + [
        "--latent-dim", "8", "--quiet", "--no-xla", "--out", str(out), *flags,
    ]  # fmt: skip


@pytest.mark.slow
def test_private_run_reports_its_budget_stops_at_it_and_generate_states_it(tmp_path, data, capsys):
    out = tmp_path / "run"
    flags = ["--steps", "12", "--steps-per-epoch", "4", "--dp-epsilon", "1.9", "--dp-delta", "1e-3"]
    assert main(_train(data, out, *flags, "--dp-noise-multiplier", "1.0")) == 0
    s = json.loads((out / "summary.json").read_text())
    # The budget is spent before the 12 planned steps: training stops there.
    assert 1 <= s["steps"] == s["config.dp.max_steps"] < 12
    assert s["dp_epsilon"] <= 1.9 and s["dp_noise_multiplier"] == 1.0
    assert list((out / "tensorboard" / "privacy").iterdir())
    assert "differentially private: epsilon" in capsys.readouterr().out
    assert main(["generate", "--model", str(out), "-n", "8", "--out", str(tmp_path / "gen")]) == 0
    manifest = json.loads((tmp_path / "gen" / "manifest.json").read_text())
    assert manifest["metadata"]["generator"]["privacy"]["epsilon"] == pytest.approx(s["dp_epsilon"])


def test_a_vae_trains_privately_from_the_command_line(tmp_path, data, capsys):
    out = tmp_path / "run"
    flags = ["--model", "vae", "--steps", "2", "--dp-epsilon", "5", "--dp-delta", "1e-3"]
    assert main(_train(data, out, *flags)) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["model"] == "vae" and s["steps"] == 2 and 0 < s["dp_epsilon"] <= 5
    assert f"epsilon {s['dp_epsilon']:.3g} at delta 0.001" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--dp-epsilon", "0"], "--dp-epsilon: epsilon must be > 0"),
        (["--dp-epsilon", "-2"], "--dp-epsilon: epsilon must be > 0"),
        (["--dp-epsilon", "1", "--dp-delta", "0.05"], "--dp-delta: must be < 1/n = 0.025"),
        (["--dp-epsilon", "1", "--dp-clip", "0"], "--dp-clip: the clip norm must be > 0"),
        (["--dp-epsilon", "1", "--model", "ddpm"], "supports dcgan, hinge, cgan, vae, cvae"),
        (["--dp-epsilon", "1", "--model", "ddpm"], "the diffusion trainer has no DP-SGD step"),
        (["--dp-epsilon", "0.001", "--dp-delta", "1e-4"], "needs a noise multiplier above"),
        (["--dp-delta", "1e-4"], "needs a target epsilon or a noise multiplier"),
    ],
)
def test_bad_dp_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, capsys, data, flags, words
):
    assert main(_train(data, tmp_path / "run", "--steps", "50", *flags)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfsynth: error: ") and words in lines[0], lines
    assert listing(tmp_path) == []
