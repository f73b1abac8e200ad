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
from tfsynth.data import load_dataset
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


def _npz(tmp_path, name, images, labels=None):
    arrays = {"images": images} if labels is None else {"images": images, "labels": labels}
    np.savez(tmp_path / f"{name}.npz", **arrays)
    return f"npz:{tmp_path / f'{name}.npz'}"


@pytest.mark.parametrize("case", ["shape", "missing class", "bogus"])
def test_bad_unlabeled_data_exits_2_before_anything_is_written(tmp_path, capsys, case):
    images = np.zeros((600, 16, 16, 1), np.uint8)
    data = _npz(tmp_path, "real", images, np.arange(600) % 3)
    unlabeled, message = {
        "shape": (_npz(tmp_path, "u28", np.zeros((50, 28, 28, 1), np.uint8)), "shapes must match"),
        "missing class": (_npz(tmp_path, "u16", images[:50]), "class '1' has no labelled images"),
        "bogus": ("bogus", "unknown dataset spec 'bogus'"),
    }[case]
    if case == "missing class":
        data = _npz(tmp_path, "real", images, np.arange(600) % 2 * 2)  # classes 0 and 2
    before = listing(tmp_path)
    rc = main(["run", "--preset", "smoke", "--data", data, "--unlabeled", unlabeled,
               "--out", str(tmp_path / "run"), "--saved-models", str(tmp_path / "sm")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert listing(tmp_path) == before


@pytest.mark.slow
def test_unlabeled_data_adds_pseudo_to_the_search_and_to_d_prime(tmp_path, monkeypatch):
    """`run --unlabeled`: SSL, D_pseudo, pseudo candidates in the search, source=pseudo in D'.

    Which mix wins is tested in tests/fusion/test_search.py; here validation
    prefers the largest mix, so D' must be the one with D_pseudo.
    """
    from tfsynth.fusion import search as search_mod
    from tfsynth.runner import run

    monkeypatch.setattr(search_mod, "_score", lambda data, n, *a: {
        "val": [len(data) / 10_000], "val_loss": [1.0], "test": [0.5]})  # fmt: skip
    cfg = preset("smoke", data="mnist-10k[:300]", unlabeled="mnist-10k[300:500]")
    cfg.train.steps, cfg.augment.num_examples, cfg.generate.num_examples = 5, 20, 50
    cfg.fuse.multipliers, cfg.fuse.gen_shares = (1.0,), (0.0,)
    out, lines = tmp_path / "run", []
    summary = run(cfg, out=out, saved_models=tmp_path / "sm", log=lines.append, verbose=0)
    search = json.loads((out / "search" / "search.json").read_text())
    families = [r["family"] for r in search["table"]]
    assert families == ["D", "D+aug", "D+pseudo", "D+aug+pseudo"]
    assert search["table"][search["chosen"]]["family"] == "D+aug+pseudo"
    fused = load_dataset(str(out / "fused"))
    sources = fused.extras["source"].astype(str)
    kept = summary["pseudo.num_kept"]
    assert (sources == "pseudo").sum() == kept and 0 < kept <= 200
    assert set(fused.extras["method"].astype(str)[sources == "pseudo"]) == {
        "propagate+self-training"
    }
    assert 0 <= summary["pseudo.pseudo_label_accuracy"] <= 1  # the spec's labels score it
    ssl = json.loads((out / "ssl" / "summary.json").read_text())
    assert ssl["num_examples"] == summary["num_train"] + 200 and not ssl["labels_used"]
    run(cfg, out=out, saved_models=tmp_path / "sm", log=lines.append, verbose=0)
    assert "[ssl] already done, skipped" in lines and "[pseudo] already done, skipped" in lines
