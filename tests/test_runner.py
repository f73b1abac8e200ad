import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import listing
from tfsynth.cli import main
from tfsynth.config import preset
from tfsynth.errors import ConfigError
from tfsynth.runner import _check_config

REQUIRED = [
    "fid",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "tstr_accuracy",
    "trtr_accuracy",
    "fused_accuracy",
    "real_only_accuracy",
    "dcr_synthetic_median",
    "dcr_holdout_median",
    "memorization_rate",
    "wall_seconds",
    "verdict",
    "d_test_accuracy",
    "dprime_test_accuracy",
    "search_chosen_label",
]


def test_config_mismatch_is_refused(tmp_path):
    _check_config(tmp_path / "r", preset("smoke"))
    _check_config(tmp_path / "r", preset("smoke"))  # same config: resume
    with pytest.raises(ConfigError, match="different config"):
        _check_config(tmp_path / "r", preset("smoke", model="vae"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset", "huge"], "--preset: 'huge'"),
        (["--data", "bogus"], "unknown dataset spec 'bogus'"),
        (["--model", "gpt"], "train.model: 'gpt'"),
        (["--model", "cgan,gpt"], "train.model: 'cgan,gpt'"),
        (["--preset", "smoke", "--data", "mnist-10k[:20]"], "leave 12 for the train split"),
        (["--data", "mnist-10k[:600]", "--test", "bogus"], "unknown dataset spec 'bogus'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    rc = main(
        ["run", *argv, "--out", str(tmp_path / "run"), "--saved-models", str(tmp_path / "sm")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert listing(tmp_path) == []


def test_unlabelled_data_exits_2_before_anything_is_written(tmp_path, capsys):
    np.savez(tmp_path / "u.npz", images=np.zeros((600, 16, 16, 1), np.uint8))
    out = tmp_path / "out"
    rc = main(["run", "--data", f"npz:{tmp_path / 'u.npz'}", "--out", str(out / "run"),
               "--saved-models", str(out / "sm")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "unlabelled; run --data needs labelled images" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def _cli(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "tfsynth")
    return [exe, "run", "--preset", "smoke", "--data", "mnist-10k[:400]", *args]


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_stages(tmp_path):
    out, sm = tmp_path / "run", tmp_path / "sm"
    args = _cli("--out", str(out), "--saved-models", str(sm))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stages_file = out / "stages.json"
    deadline = time.time() + 600
    # Kill as soon as the generator is trained: later stages are unfinished.
    while time.time() < deadline and proc.poll() is None:
        if stages_file.exists() and "train" in json.loads(stages_file.read_text() or "{}"):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    before = json.loads(stages_file.read_text())
    assert not (out / "summary.json").exists()

    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    after = json.loads(stages_file.read_text())
    for stage in ("split", "augment", "train"):
        assert f"[{stage}] already done, skipped" in done.stdout
        assert after[stage]["finished"] == before[stage]["finished"]
    for stage in ("generate", "search", "fuse", "evaluate", "export", "report"):
        assert stage in after and f"[{stage}] done" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    missing = [k for k in REQUIRED if k not in summary]
    assert not missing
    assert 0 <= summary["tstr_accuracy"] <= 1 and summary["wall_seconds"] > 0
    assert (out / "report.html").is_file()
    html = (out / "report.html").read_text()
    assert html.index('class="verdict') < html.index("<h2>Distribution</h2>")
    search = json.loads((out / "search" / "search.json").read_text())
    rows = search["table"]
    assert rows[0]["label"] == "real only"
    best = max(r["val_accuracy"] for r in rows)
    assert rows[search["chosen"]]["val_accuracy"] == best
    assert summary["dprime_test_accuracy"] == rows[search["chosen"]]["test_accuracy"]
    assert list(sm.glob("run/1/saved_model.pb"))


@pytest.mark.slow
def test_a_model_list_trains_each_and_the_search_sees_the_usable_ones(tmp_path):
    from tfsynth.runner import run

    cfg = preset("smoke", data="mnist-10k[:400]", model="cgan,cvae")
    cfg.train.steps = 10
    cfg.fuse.multipliers = (1.0,)
    summary = run(
        cfg, out=tmp_path / "run", saved_models=tmp_path / "sm", log=lambda _: None, verbose=0
    )
    for m in ("cgan", "cvae"):
        assert (tmp_path / "run" / "models" / m / "model.keras").is_file()
        assert summary[f"train.{m}.steps"] == 10
    search = json.loads((tmp_path / "run" / "search" / "search.json").read_text())
    usable = [m for m in ("cgan", "cvae") if not summary[f"train.{m}.failed"]]
    in_grid = {r["generator"] for r in search["table"] if r["generator"]}
    assert in_grid == set(usable)
    assert summary["exported_model"] in ("cgan", "cvae")
