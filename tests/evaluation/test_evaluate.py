import importlib
import json

import numpy as np
import pytest

from tests.conftest import listing
from tests.evaluation.conftest import separable
from tfsynth.cli import main
from tfsynth.evaluation import evaluate

CONTRACT_KEYS = [
    "fid", "kid", "kid_std", "precision", "recall", "density", "coverage",
    "tstr_accuracy", "trtr_accuracy", "fused_accuracy", "real_only_accuracy",
    "dcr_synthetic_median", "dcr_holdout_median", "memorization_rate",
    "extractor", "num_real", "num_synthetic", "num_test",
]  # fmt: skip
FAST = [
    "--seeds", "1", "--low-data-sizes", "8", "--epochs", "1", "--extractor-epochs", "1",
    "--min-steps", "0", "--kid-subsets", "2",
]  # fmt: skip


def _npz(path, ds):
    np.savez(path, images=ds.images, labels=ds.labels)
    return f"npz:{path}"


@pytest.fixture
def specs(tmp_path):
    return {
        "real": _npz(tmp_path / "real.npz", separable(32, 0)),
        "syn": _npz(tmp_path / "syn.npz", separable(32, 1)),
        "test": _npz(tmp_path / "test.npz", separable(24, 2)),
    }


@pytest.mark.slow
def test_cli_evaluate_writes_summary_report_and_figures(specs, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--real", specs["real"], "--synthetic", specs["syn"]]
    args += ["--test", specs["test"], "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert main(args + FAST) == 0
    assert "report.html" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    for key in CONTRACT_KEYS:
        assert summary[key] is not None, key
    assert summary["command"] == "evaluate" and summary["extractor"] == "domain-classifier"
    assert (summary["num_real"], summary["num_synthetic"], summary["num_test"]) == (32, 32, 24)
    assert summary["low_data_sizes"] == [8, 32] and summary["utility_seeds"] == [0]
    assert summary["tstr_accuracy"] >= 0.9  # the synthetic set is as separable as the real one
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "domain-classifier" in md and "32 synthetic vs 24 real (test split)" in md
    for name in ("samples", "classes", "nearest_neighbors", "low_data_curve"):
        rel = summary[f"figures.{name}"]
        assert (out / rel).stat().st_size > 0
        assert f"]({rel})" in md and f'src="{rel}"' in html
    assert not [p for p in listing(tmp_path) if ".tmp" in p]


def test_evaluate_splits_real_when_no_test_is_given():
    real, syn = separable(40, 0), separable(20, 1, name="syn")
    s = evaluate(
        real, syn, extractor_epochs=1, min_steps=0, utility=False, privacy=False,
        kid_subsets=2, cache_dir=False, max_samples=10,
    )  # fmt: skip
    assert s["test_source"] == "split of real (0.2)"
    assert (s["num_real"], s["num_test"]) == (32, 8)
    assert s["num_synthetic_features"] == 10 and s["num_reference_features"] == 8
    assert "tstr_accuracy" not in s and "memorization_rate" not in s
    assert "figures.samples" not in s  # no out_dir, no figures


def _run(args, capsys):
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reference", "both"], "reference: expected one of test, real"),
        (["--seeds", "0"], "seeds: expected a positive number"),
        (["--extractor", "resnet"], "extractor 'resnet'"),
        (["--epochs", "0"], "classifier_epochs: expected a positive integer"),
    ],
)
def test_cli_bad_options_exit_2_before_writing(specs, tmp_path, capsys, extra, message):
    out = tmp_path / "eval"
    args = ["evaluate", "--real", specs["real"], "--synthetic", specs["syn"], "--out", str(out)]
    rc, err = _run(args + extra, capsys)
    assert rc == 2 and len(err) == 1 and message in err[0]
    assert not out.exists()


def test_cli_bad_data_exit_2_and_nothing_half_written(specs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "eval"
    base = ["evaluate", "--out", str(out), "--synthetic", specs["syn"]]
    rc, err = _run(base + ["--real", f"npz:{tmp_path}/missing.npz"], capsys)
    assert rc == 2 and len(err) == 1 and "missing.npz" in err[0]
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, images=np.zeros((8, 16, 16, 3), np.uint8), labels=np.arange(8) % 2)
    rc, err = _run(base + ["--real", specs["real"], "--test", f"npz:{rgb}"], capsys)
    assert rc == 2 and len(err) == 1 and "16x16x3" in err[0] and "shapes must match" in err[0]
    assert not out.exists()

    # A failure in the middle of the run leaves neither `out` nor a temporary.
    from tfsynth.errors import DataError

    def boom(*a, **k):
        raise DataError("synthetic: simulated failure")

    # The module, not the function of the same name that tfsynth.evaluation exports.
    module = importlib.import_module("tfsynth.evaluation.evaluate")
    monkeypatch.setattr(module, "privacy_metrics", boom)
    rc, err = _run(base + ["--real", specs["real"], "--no-utility"] + FAST, capsys)
    assert rc == 2 and err == ["tfsynth: error: synthetic: simulated failure"]
    assert not out.exists() and not [p for p in listing(tmp_path) if p.startswith(".eval")]

    # An existing output is never replaced without --overwrite.
    out.mkdir()
    (out / "keep.txt").write_text("x")
    rc, err = _run(base + ["--real", specs["real"]], capsys)
    assert rc == 2 and "already exists" in err[0]
    assert listing(out) == ["keep.txt"]


def test_unlabelled_real_gets_a_cached_ssl_encoder_and_no_utility(specs, tmp_path, capsys):
    real, test = separable(32, 0), separable(24, 2)
    np.savez(tmp_path / "u.npz", images=real.images)
    np.savez(tmp_path / "ut.npz", images=test.images)
    args = ["evaluate", "--real", f"npz:{tmp_path / 'u.npz'}", "--synthetic", specs["syn"],
            "--test", f"npz:{tmp_path / 'ut.npz'}", "--cache-dir", str(tmp_path / "c"), *FAST]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "e1")]) == 0
    printed = capsys.readouterr().out
    assert "note: " in printed and "self-supervised encoder trained on its images" in printed
    first = json.loads((tmp_path / "e1" / "summary.json").read_text())
    assert first["extractor"] == "ssl-encoder" and first["extractor_cached"] is False
    assert "tstr_accuracy" not in first and "utility" in first["utility_note"]
    assert "fid_per_class_mean" not in first and first["fid"] >= 0
    # The same images with their labels, read without them: the cached encoder is reused.
    args[args.index("--real") + 1] = specs["real"]
    assert main([*args, "--unlabeled", "--out", str(tmp_path / "e2")]) == 0
    again = json.loads((tmp_path / "e2" / "summary.json").read_text())
    assert again["extractor_cached"] is True and again["fid"] == pytest.approx(first["fid"])
    assert len(list((tmp_path / "c" / "ssl").iterdir())) == 1
