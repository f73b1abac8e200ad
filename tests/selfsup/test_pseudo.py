"""pseudo-label: the dataset directory it writes, its summary, and bad input."""

import json

import numpy as np
import pytest

from tests.conftest import listing
from tfsynth.cli import main
from tfsynth.data import ImageDataset, load_dataset
from tfsynth.selfsup import PseudoLabelConfig, label_propagation, pseudo_label
from tfsynth.selfsup.networks import build_encoder


def _blobs(n, seed, classes=2):
    """Images whose class is which half is bright: easy for any encoder."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 30, (n, 16, 16, 1)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, :, c * 8 : c * 8 + 8] += 200
    return images, labels


@pytest.mark.parametrize("method", ["propagate", "knn", "linear"])
def test_writes_pseudo_labelled_dataset_with_provenance(tmp_path, method):
    li, ll = _blobs(6, 0)
    ui, ul = _blobs(10, 1)
    enc = build_encoder((16, 16, 1), width=2, feature_dim=8)
    cfg = PseudoLabelConfig(method=method, k=3, min_confidence=0.5)
    s = pseudo_label(
        cfg,
        tmp_path / "p",
        labeled=ImageDataset(li, ll),
        unlabeled=ImageDataset(ui, ul),
        encoder=enc,
    )
    assert 0 < s["num_kept"] <= 10 and "pseudo_label_accuracy" in s
    out = load_dataset(str(tmp_path / "p"))
    assert out.labeled and len(out) == s["num_kept"]
    ex = out.extras
    assert set(ex["source"].astype(str)) == {"pseudo"}
    assert (ex["confidence"] >= 0.5).all() and set(ex["method"].astype(str)) == {cfg.method_name}
    np.testing.assert_array_equal(out.images, ui[ex["source_index"]])
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["command"] == "pseudo-label" and "kept_fraction_per_class.0" in summary


def test_label_propagation_follows_the_cluster():
    t = np.linspace(0, np.pi / 2, 20)
    arc = np.stack([np.cos(t), np.sin(t)], 1).astype(np.float32)  # a chain from class 0 to ...
    far = np.array([[-1.0, 0.0], [-0.99, 0.14]], np.float32)  # ... and a separate class 1
    p = label_propagation(arc[:1], [0], np.concatenate([arc[1:], far[1:]]), 2, k=2)
    assert (p[:-1].argmax(1) == 0).all()


def _inputs(tmp_path):
    li, ll = _blobs(6, 0)
    np.savez(tmp_path / "lab.npz", images=li, labels=ll)
    np.savez(tmp_path / "unl.npz", images=_blobs(6, 1)[0])
    np.savez(tmp_path / "big.npz", images=np.zeros((4, 28, 28, 1), np.uint8))
    np.savez(tmp_path / "gap.npz", images=li[:2], labels=np.array([0, 2]))
    enc = build_encoder((16, 16, 1), width=2, feature_dim=4)
    import keras  # noqa: F401

    from tfsynth.selfsup import build_simclr

    m = build_simclr((16, 16, 1), width=2, feature_dim=4, projection_dim=2)
    m.compile()
    (tmp_path / "ssl").mkdir()
    m.save(tmp_path / "ssl" / "model.keras")
    del enc


@pytest.mark.parametrize(
    "labeled, unlabeled, message",
    [
        ("unl.npz", "unl.npz", "unlabelled; pseudo-label --labeled needs labelled images"),
        ("lab.npz", "big.npz", "shapes must match"),
        ("gap.npz", "unl.npz", "class '1' has no labelled images"),
    ],
)
def test_bad_input_exits_2_in_one_line_and_writes_nothing(
    tmp_path, capsys, labeled, unlabeled, message
):
    _inputs(tmp_path)
    before = listing(tmp_path)
    rc = main(
        [
            "pseudo-label",
            "--labeled",
            f"npz:{tmp_path / labeled}",
            "--unlabeled",
            f"npz:{tmp_path / unlabeled}",
        ]
        + ["--ssl", str(tmp_path / "ssl"), "--out", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert listing(tmp_path) == before


def test_cli_writes_summary(tmp_path, capsys):
    _inputs(tmp_path)
    rc = main(
        [
            "pseudo-label",
            "--labeled",
            f"npz:{tmp_path / 'lab.npz'}",
            "--unlabeled",
            f"npz:{tmp_path / 'unl.npz'}",
        ]
        + [
            "--ssl",
            str(tmp_path / "ssl"),
            "--min-confidence",
            "0.3",
            "--k",
            "3",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0 and "kept" in capsys.readouterr().out
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_fuse_takes_pseudo_as_fourth_source(tmp_path, capsys):
    li, ll = _blobs(8, 0)
    ui, ul = _blobs(10, 1)
    np.savez(tmp_path / "real.npz", images=li, labels=ll)
    enc = build_encoder((16, 16, 1), width=2, feature_dim=8)
    cfg = PseudoLabelConfig(method="knn", k=3, min_confidence=0.5)
    s = pseudo_label(
        cfg, tmp_path / "p", labeled=ImageDataset(li, ll), unlabeled=ImageDataset(ui), encoder=enc
    )
    assert s["num_kept"] >= 2 and "pseudo_label_accuracy" not in s  # no true labels given
    argv = ["fuse", "--real", f"npz:{tmp_path / 'real.npz'}", "--pseudo", str(tmp_path / "p")]
    argv += ["--counts", "real=4,pseudo=2", "--out", str(tmp_path / "fused")]
    assert main(argv) == 0, capsys.readouterr().err
    fused = load_dataset(str(tmp_path / "fused"))
    sources = fused.extras["source"].astype(str)
    assert sorted(sources.tolist()) == ["pseudo"] * 2 + ["real"] * 4
    assert (fused.extras["confidence"][sources == "pseudo"] >= 0.5).all()
    model_ids = set(fused.extras["model_id"][sources == "pseudo"].astype(str))
    assert model_ids == {s["model_id"]}
    methods = fused.extras["method"].astype(str)  # carried through; "" where it does not apply
    assert set(methods[sources == "pseudo"]) == {"knn+self-training"}
    assert set(methods[sources == "real"]) == {""}
