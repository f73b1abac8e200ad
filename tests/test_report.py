import json

from tests.conftest import listing
from tfsynth.plotting import image_grid, save_figure
from tfsynth.report import fmt, low_data_figure, write_report


def _summary():
    return {
        "extractor": "domain-classifier",
        "extractor_dim": 128,
        "extractor_test_accuracy": 0.97,
        "num_real": 4000,
        "num_synthetic": 4000,
        "num_test": 2000,
        "num_reference_features": 2000,
        "num_synthetic_features": 4000,
        "reference": "test",
        "fid": 1.25,
        "kid": 0.002,
        "kid_std": 0.001,
        "precision": 0.8,
        "fid_per_class.zero": 2.0,
        "fid_per_class.one": None,
        "trtr_accuracy": 0.95,
        "trtr_accuracy_std": 0.01,
        "utility_seeds": [0, 1, 2],
        "utility_epochs": 3,
        "low_data_sizes": [100, 4000],
        "low_data.100.real": 0.7,
        "low_data.100.real_std": 0.02,
        "low_data.100.real+synthetic": 0.9,
        "low_data.4000.real": 0.95,
        "memorization_rate": 0.05,
        "privacy_space": "pixel",
        "a <b> field": "<script>",
    }


def test_write_report_tables_figures_and_sections(tmp_path):
    import numpy as np

    save_figure(image_grid(np.zeros((2, 8, 8, 1), np.uint8)), tmp_path / "figures" / "samples.png")
    s = _summary() | {"figures.samples": "figures/samples.png", "figures.gone": "figures/gone.png"}
    paths = write_report(
        tmp_path,
        s,
        sections=[("Training", {"epochs": 5, "loss": 0.123456}), ("Notes", "a <i>note</i>")],
        command="run",
    )
    md = paths["markdown"].read_text()
    assert "**domain-classifier** features (128-d; classifier test accuracy 0.97)" in md
    assert "4000 synthetic vs 2000 real (test split) samples" in md
    assert "| FID | 1.25 |" in md and "| KID | 0.002 ± 0.001 |" in md
    assert "| TRTR | 0.95 ± 0.01 |" in md and "seeds 0, 1, 2" in md
    assert "| 100 | 0.70 ± 0.02 | 0.9 |" in md and "| 4000 | 0.95 | n/a |" in md
    assert "| zero | 2 |" in md and "| one | n/a |" in md
    assert "| loss | 0.1235 |" in md and "## Notes" in md
    assert "![Synthetic samples](figures/samples.png)" in md
    assert "gone.png" not in md  # a figure that is not on disk is left out
    html = paths["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and '<img src="figures/samples.png"' in html
    assert "<script>" not in html and "a &lt;i&gt;note&lt;/i&gt;" in html
    assert "<b>domain-classifier</b>" in html
    summary = json.loads(paths["summary"].read_text())
    assert summary["command"] == "run" and summary["fid"] == 1.25
    assert "versions.tensorflow" in summary
    assert listing(tmp_path) == [
        "figures",
        "figures/samples.png",
        "report.html",
        "report.md",
        "summary.json",
    ]


def test_minimal_summary_and_formatting(tmp_path):
    paths = write_report(tmp_path, {"fid": 3.0})
    md = paths["markdown"].read_text()
    assert "| FID | 3 |" in md and "Utility" not in md and "Figures" not in md
    assert fmt(None) == "n/a" and fmt(True) == "true" and fmt(1.5e-5) == "1.500e-05"
    assert fmt([1, 2.5]) == "1, 2.5"


def test_low_data_figure(tmp_path):
    curve = {
        "real": {"sizes": [100, 500], "mean": [0.7, 0.9], "std": [0.01, 0.02]},
        "real+synthetic": {"sizes": [100, 500], "mean": [0.8, 0.92], "std": [0.0, 0.0]},
    }
    fig = low_data_figure(curve)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "real",
        "real+synthetic",
    ]
    assert save_figure(fig, tmp_path / "c.png").stat().st_size > 0
