"""`tfsynth run --dp-*`: checked before anything is written, passed to every generator's training."""

import json

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.cli import main
from tfsynth.config import RunConfig, preset
from tfsynth.privacy import DPConfig
from tfsynth.run_report import privacy_section


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    images, labels = make_arrays(n=200, num_classes=2, seed=0)
    path = tmp_path_factory.mktemp("dp-run-data") / "tiny.npz"
    np.savez(path, images=images, labels=labels)
    return f"npz:{path}"


def _run(data, root, *flags):
    return ["run", "--data", data, "--preset", "smoke", "--out", str(root / "run"),
            "--saved-models", str(root / "sm"), *flags]  # fmt: skip


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--dp-epsilon", "0"], "--dp-epsilon: epsilon must be > 0"),
        (["--dp-epsilon", "-1"], "--dp-epsilon: epsilon must be > 0"),
        # 0.5 < 1 passes DPConfig; only the train split's size (n < 200) refuses it.
        (["--dp-epsilon", "1", "--dp-delta", "0.5"], "--dp-delta: must be < 1/n = "),
        (["--dp-epsilon", "1", "--dp-clip", "0"], "--dp-clip: the clip norm must be > 0"),
        (["--dp-epsilon", "1", "--model", "cgan,ddpm"], "the diffusion trainer has no DP-SGD"),
        (["--dp-delta", "1e-4"], "needs a target epsilon or a noise multiplier"),
    ],
)
def test_bad_dp_input_exits_2_with_one_line_and_leaves_no_run_directory(
    tmp_path, capsys, data, flags, words
):
    assert main(_run(data, tmp_path, *flags)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfsynth: error: ") and words in lines[0], lines
    assert listing(tmp_path) == []


class _Stop(Exception):
    pass


def test_the_flags_reach_every_generators_training_without_a_val_monitor(
    tmp_path, data, monkeypatch
):
    import tfsynth.training

    seen = []

    def fake_train(data, cfg, *, out, val=None, verbose="auto", **kw):
        seen.append((cfg.model, cfg.dp, val))
        if len(seen) == 2:
            raise _Stop  # both generators got their config: no need to train
        return type("Trained", (), {"summary": {"steps": 1}})()

    monkeypatch.setattr(tfsynth.training, "train", fake_train)
    flags = ["--model", "cgan,vae", "--dp-epsilon", "3", "--dp-delta", "1e-4", "--dp-clip", "0.7"]
    with pytest.raises(_Stop):
        main(_run(data, tmp_path, *flags))
    want = DPConfig(epsilon=3.0, delta=1e-4, clip=0.7)  # the noise multiplier stays DPConfig's
    assert seen == [("cgan", want, None), ("vae", want, None)]
    stored = (tmp_path / "run" / "config.json").read_text()
    assert json.loads(stored)["train"]["dp"]["clip"] == 0.7
    # A rerun compares the stored config with its own: the DPConfig must round-trip.
    assert RunConfig.from_json(stored).train.dp == want


def test_the_report_states_the_budget_or_no_formal_guarantee():
    plain = preset("smoke")
    assert privacy_section(plain, {"cgan": {"steps": 5}})["budget"].startswith(
        "no formal guarantee"
    )
    private = preset("smoke")
    private.train.dp = DPConfig(epsilon=2.0, delta=1e-6)
    rows = privacy_section(private, {"cgan": {"steps": 7, "dp_epsilon": 1.93, "dp_delta": 1e-6}})
    assert rows["budget"] == "epsilon 2, delta 1e-06 per generator (DP-SGD)"
    assert rows["cgan"] == "(1.93, 1e-06)-DP after 7 steps"
