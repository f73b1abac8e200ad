import numpy as np
import pytest
from scipy.spatial.distance import cdist

from tfsynth.errors import DataError
from tfsynth.evaluation.privacy import (
    nearest_neighbor_grid,
    pixel_vectors,
    privacy_metrics,
)
from tfsynth.plotting import save_figure


def _sets(seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((60, 10)), rng.random((40, 10)), rng.random((50, 10))


def test_matches_a_cdist_reference():
    train, holdout, syn = _sets()
    m, syn_d, syn_i = privacy_metrics(syn, train, holdout, block_size=16)
    d_syn, d_hold = cdist(syn, train).min(axis=1), cdist(holdout, train).min(axis=1)
    np.testing.assert_allclose(syn_d, d_syn, rtol=1e-9)
    np.testing.assert_array_equal(syn_i, cdist(syn, train).argmin(axis=1))
    thr = np.percentile(d_hold, 5)
    assert m["dcr_synthetic_median"] == pytest.approx(np.median(d_syn), rel=1e-9)
    assert m["dcr_holdout_median"] == pytest.approx(np.median(d_hold), rel=1e-9)
    assert m["memorization_threshold"] == pytest.approx(thr, rel=1e-9)
    assert m["memorization_rate"] == pytest.approx(np.mean(d_syn < thr))


def test_copies_are_flagged_and_fresh_samples_are_not():
    train, holdout, fresh = _sets(1)
    clean, _, _ = privacy_metrics(fresh, train, holdout)
    copies = np.concatenate([train[:25] + 1e-4, fresh[:25]])  # half near-copies
    leaky, _, _ = privacy_metrics(copies, train, holdout)
    assert clean["memorization_rate"] < 0.2
    assert leaky["memorization_rate"] >= 0.5
    assert leaky["dcr_synthetic_p5"] < clean["dcr_synthetic_p5"]
    assert privacy_metrics(train[:5], train, holdout)[0]["exact_copies"] == 5
    with pytest.raises(DataError, match="percentile"):
        privacy_metrics(fresh, train, holdout, percentile=0)


def test_nearest_neighbor_grid_shows_the_closest_pairs(tmp_path):
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, (20, 16, 16, 1), dtype=np.uint8)
    syn = rng.integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
    syn[3] = train[7]
    _, d, i = privacy_metrics(pixel_vectors(syn), pixel_vectors(train), pixel_vectors(train[:5]))
    fig = nearest_neighbor_grid(syn, train, d, i, n=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "d=0.00" and "train #7" in titles
    assert len(titles) == 8
    path = save_figure(fig, tmp_path / "nn.png")
    assert path.stat().st_size > 0
