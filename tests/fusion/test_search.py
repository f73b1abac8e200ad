"""tfsynth.fusion.search: the grid, the choice on validation, the summary keys."""

import json

import numpy as np
import pytest

from tfsynth.data import ImageDataset, write_dataset_dir
from tfsynth.errors import ConfigError
from tfsynth.fusion import search as search_mod
from tfsynth.fusion.search import (
    Candidate,
    SearchConfig,
    candidates,
    flat_summary,
    search_figure,
    search_mix,
)

FAST = {"seeds": 1, "epochs": 1, "min_steps": 30, "batch_size": 8}


def _halves(n, seed, flip=False):
    """Class 0 is bright on the left half, class 1 on the right (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, 16, 16, 1)).astype(np.uint8)
    for i, y in enumerate(labels):
        images[i, :, (0 if y == 0 else 8) : (8 if y == 0 else 16)] += 150
    if flip:
        labels = 1 - labels
    return ImageDataset(images, labels, class_names=["left", "right"], name=f"halves{seed}")


def test_grid_real_only_first_and_sources_respected():
    cfg = SearchConfig(
        multipliers=(0.0, 1.0, 2.0), gen_shares=(0.0, 1.0), min_confidences=(0.5, 0.9)
    )
    grid = candidates(cfg, has_aug=True, generators={"g": "run/model.keras"})
    assert grid[0] == Candidate() and grid.count(Candidate()) == 1
    assert len(grid) == 1 + 2 * (1 + 2)  # m in {1, 2} x (aug only + gen at 2 thresholds)
    no_aug = candidates(cfg, has_aug=False, generators={"g": "run/model.keras"})
    assert all(c.gen_share == 1 for c in no_aug[1:]) and len(no_aug) == 5
    assert Candidate(2.0, 0.25, 0.9, "g").ratios() == "real=1,aug=1.5,gen=0.5"
    assert Candidate(1.0, 0.5, 0.9, "g").family == "D+aug+gen"


def test_search_picks_real_only_when_the_synthetic_source_is_noise(tmp_path):
    write_dataset_dir(tmp_path / "noise", _halves(80, 5, flip=True))
    result = search_mix(
        _halves(40, 0),
        _halves(40, 1),
        generators={"noise": str(tmp_path / "noise")},
        test=_halves(40, 2),
        config=SearchConfig(multipliers=(2.0,), gen_shares=(1.0,), **FAST),
    )
    rows = result["table"]
    assert [r["label"] for r in rows] == ["real only", "real + 2x (noise)"]
    assert rows[1]["num_examples"] == 120
    assert rows[1]["val_accuracy"] < rows[0]["val_accuracy"] - 0.2
    assert result["chosen"] == 0 and result["chosen_fusion"]["ratios"] == "real=1"
    s = flat_summary(result)
    assert s["dprime_val_accuracy"] == s["d_val_accuracy"] == rows[0]["val_accuracy"]
    assert s["ladder.D+gen.label"] == "real + 2x (noise)"


def test_choice_is_the_best_validation_mean_and_ties_go_to_real_only(monkeypatch, tmp_path):
    write_dataset_dir(tmp_path / "gen", _halves(80, 5))
    scores = iter([[0.8, 0.8], [0.9, 0.7], [0.85, 0.86], [0.7, 0.7]])
    monkeypatch.setattr(search_mod, "_score", lambda *a: {"val": next(scores), "test": [0.5, 0.5]})
    cfg = SearchConfig(multipliers=(1.0,), gen_shares=(0.0, 0.5, 1.0), seeds=2)
    result = search_mix(
        _halves(20, 0),
        _halves(20, 1),
        aug_policy="rotate:10",
        generators={"g": str(tmp_path / "gen")},
        config=cfg,
    )
    assert [r["val_accuracy"] for r in result["table"]] == pytest.approx([0.8, 0.8, 0.855, 0.7])
    assert result["chosen"] == 2 and result["chosen_fusion"]["ratios"] == "real=1,aug=0.5,gen=0.5"
    assert result["ladder"] == {"D": 0, "D+aug": 1, "D+aug+gen": 2, "D+gen": 3}
    search_figure(result)  # draws


def test_a_tie_keeps_real_only(monkeypatch):
    monkeypatch.setattr(search_mod, "_score", lambda *a: {"val": [0.9], "test": []})
    result = search_mix(
        _halves(20, 0),
        _halves(20, 1),
        aug_policy="rotate:10",
        config=SearchConfig(gen_shares=(0.0,), seeds=1),
    )
    assert result["chosen"] == 0


def test_a_grid_without_synthetic_candidates_is_refused():
    with pytest.raises(ConfigError, match="the grid has no candidate with synthetic data"):
        search_mix(_halves(20, 0), _halves(20, 1), config=SearchConfig(**FAST))
    with pytest.raises(ConfigError, match="the grid has no candidate with synthetic data"):
        search_mix(
            _halves(20, 0),
            _halves(20, 1),
            aug_policy="rotate:10",
            config=SearchConfig(gen_shares=(1.0,), **FAST),
        )
    with pytest.raises(ConfigError, match=r"search.gen_shares: expected numbers in \[0, 1\]"):
        SearchConfig(gen_shares=(1.5,)).validate()


def _npz(tmp_path, name, ds):
    np.savez(tmp_path / f"{name}.npz", images=ds.images, labels=ds.labels)
    return f"npz:{tmp_path / f'{name}.npz'}"


def test_fuse_search_cli_builds_the_chosen_mix(tmp_path, capsys):
    from tfsynth.cli import main
    from tfsynth.data import load_dataset

    real, val = _npz(tmp_path, "real", _halves(24, 0)), _npz(tmp_path, "val", _halves(24, 1))
    out = tmp_path / "fused"
    rc = main(["fuse", "--search", "--real", real, "--val", val, "--aug-policy", "rotate:10",
               "--search-gen-shares", "0", "--search-multipliers", "1", "--search-seeds", "1",
               "--out", str(out)])  # fmt: skip
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    search = m["metadata"]["fusion"]["config"]["extra"]["search"]
    table = search["table"]
    chosen = table[search["chosen"]]
    assert [r["label"] for r in table] == ["real only", "real + 1x (aug)"]
    assert len(load_dataset(str(out))) == chosen["num_examples"]
    assert f"chose {chosen['label']} on --val" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--aug-policy", "rotate:10"], "--search: needs --val SPEC"),
        (["--val", "VAL", "--aug-policy", "rotate:10", "--ratios", "real=1"], "drop --ratios"),
        (["--val", "VAL", "--aug-policy", "rotate:10", "--shard-index", "0"], "drop --shard-index"),
        (["--val", "VAL", "--search-gen-shares", "1"], "the grid has no candidate with synthetic"),
        (["--val", "VAL", "--aug-policy", "rotate:10", "--search-multipliers", "-1"],
         "search.multipliers: expected numbers >= 0"),
    ],
)  # fmt: skip
def test_fuse_search_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, extra, message):
    from tests.conftest import listing
    from tfsynth.cli import main

    real, val = _npz(tmp_path, "real", _halves(12, 0)), _npz(tmp_path, "val", _halves(12, 1))
    before = listing(tmp_path)
    extra = [val if a == "VAL" else a for a in extra]
    rc = main(["fuse", "--search", "--real", real, *extra, "--out", str(tmp_path / "fused")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    assert listing(tmp_path) == before


def test_auto_multipliers_bring_d_prime_to_the_target_size():
    from tfsynth.fusion.search import AUTO_TARGET, auto_multipliers

    for n in (100, 500, 1000, 2000):
        big = max(auto_multipliers(n))
        assert big == 32 or abs(n * (1 + big) - AUTO_TARGET) <= n / 2
    assert auto_multipliers(7000) == (1.0,)
    cfg = SearchConfig(gen_shares=(0.0,), seeds=1)
    assert [c.multiplier for c in candidates(
        SearchConfig(multipliers=auto_multipliers(500)), has_aug=True, generators={}
    )] == [0.0, 1.0, 7.0]  # fmt: skip
    assert cfg.validate().multipliers == "auto"


def test_a_mix_that_cannot_be_built_is_recorded_and_skipped(monkeypatch):
    from tfsynth.errors import DataError

    real_mix = search_mod._mix

    def mix(real, cand, **kw):
        if cand.multiplier > 1:
            raise DataError("gen: the classifier rejects class '5'")
        return real_mix(real, cand, **kw)

    monkeypatch.setattr(search_mod, "_mix", mix)
    monkeypatch.setattr(search_mod, "_score", lambda *a: {"val": [0.5], "test": []})
    result = search_mix(
        _halves(20, 0),
        _halves(20, 1),
        aug_policy="rotate:10",
        config=SearchConfig(multipliers=(1.0, 2.0), gen_shares=(0.0,), seeds=1),
    )
    bad = result["table"][2]
    assert bad["error"] == "gen: the classifier rejects class '5'" and "val_accuracy" not in bad
    assert result["chosen"] == 0 and 2 not in result["ladder"].values()
    search_figure(result)


def _skewed_pseudo(tmp_path):
    """A pseudo-labelled set that kept 30 'left' and 5 'right' images (unlike real's 50/50)."""
    ds = _halves(70, 7)
    rows = np.concatenate([np.flatnonzero(ds.labels == 0)[:30], np.flatnonzero(ds.labels == 1)[:5]])
    sub = ImageDataset(ds.images[rows], ds.labels[rows], class_names=["left", "right"], name="p")
    write_dataset_dir(tmp_path / "pseudo", sub)
    return str(tmp_path / "pseudo")


def test_pseudo_doubles_the_grid_and_keeps_real_only_first():
    cfg = SearchConfig(multipliers=(1.0,), gen_shares=(0.0,), pseudo_shares=(0.5, 1.0))
    grid = candidates(cfg, has_aug=True, generators={}, has_pseudo=True)
    assert [c.label for c in grid] == [
        "real only", "real + 1x (aug)", "real + pseudo 50%", "real + pseudo 50% + 1x (aug)",
        "real + pseudo", "real + pseudo + 1x (aug)",
    ]  # fmt: skip
    assert [c.family for c in grid[-2:]] == ["D+pseudo", "D+aug+pseudo"]
    assert candidates(cfg, has_aug=True, generators={}) == grid[:2]


def test_a_pseudo_mix_takes_every_kept_image_whatever_its_class(monkeypatch, tmp_path):
    from tfsynth.fusion.builder import FusionConfig, materialize

    pseudo = _skewed_pseudo(tmp_path)
    # Validation prefers the bigger set, so the pseudo mix is chosen.
    monkeypatch.setattr(
        search_mod, "_score", lambda data, n, *a: {"val": [0.8 + (len(data) > n) / 10]}
    )
    real = _halves(20, 0)
    result = search_mix(real, _halves(20, 1), config=SearchConfig(seeds=1), pseudo=pseudo)
    rows, fusion = result["table"], result["chosen_fusion"]
    assert [r["label"] for r in rows] == ["real only", "real + pseudo"]
    assert result["chosen"] == 1 and rows[1]["num_examples"] == 55
    assert fusion["counts"] == "real=20,pseudo=35" and fusion["class_target"] == "pool"
    assert fusion["pseudo"] == pseudo and result["ladder"] == {"D": 0, "D+pseudo": 1}
    d = materialize(FusionConfig(real=real, **fusion))
    assert sorted(set(d.extras["source"])) == ["pseudo", "real"]
    assert np.bincount(d.labels).tolist() == [40, 15]
    with pytest.raises(
        ConfigError, match="class 'right' needs 27 examples but the sources can give at most 15"
    ):
        materialize(FusionConfig(real=real, **{**fusion, "class_target": "match"}))
    assert (d.extras["source"] == "pseudo").sum() == 35
