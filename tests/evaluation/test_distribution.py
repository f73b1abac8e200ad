"""Every metric against a plain NumPy/SciPy implementation of its paper's definition."""

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from tfsynth.errors import DataError
from tfsynth.evaluation import distribution as dist

RTOL = 1e-6


def _sets(n_real=120, n_fake=90, d=6, shift=0.3, seed=0):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, d))
    fake = rng.normal(size=(n_fake, d)) * 1.2 + shift
    return real, fake


# -- references -------------------------------------------------------------
def ref_fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def ref_mmd2_unbiased(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = sum(kxx[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(kyy[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    return sxx + syy - 2 * kxy.mean()


def ref_radii(x, k):
    d = cdist(x, x)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def ref_prdc(real, fake):
    d_rf = cdist(real, fake)
    r3, f3, r5 = ref_radii(real, 3), ref_radii(fake, 3), ref_radii(real, 5)
    precision = (d_rf <= r3[:, None]).any(axis=0).mean()
    recall = (d_rf <= f3[None, :]).any(axis=1).mean()
    density = (d_rf < r5[:, None]).sum() / (5 * len(fake))
    coverage = (d_rf.min(axis=1) < r5).mean()
    return precision, recall, density, coverage


# -- against references -------------------------------------------------------
def test_fid_matches_scipy_sqrtm():
    real, fake = _sets()
    assert dist.fid(real, fake) == pytest.approx(ref_fid(real, fake), rel=RTOL)
    mu, sigma = dist.feature_statistics(real)
    np.testing.assert_allclose(sigma, np.cov(real, rowvar=False), rtol=1e-12)


def test_kid_matches_unbiased_mmd_on_the_same_subsets():
    real, fake = _sets(n_real=40, n_fake=30)
    # subset_size >= both sets: every subset is a permutation of the full sets.
    mean, std = dist.kid(real, fake, num_subsets=3, subset_size=1000)
    m = 30
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(3):
        x = real[rng.choice(40, m, replace=False)]
        y = fake[rng.choice(30, m, replace=False)]
        vals.append(ref_mmd2_unbiased(x, y))
    assert mean == pytest.approx(np.mean(vals), rel=RTOL)
    assert std == pytest.approx(np.std(vals), rel=1e-5)


def test_precision_recall_density_coverage_match_reference():
    real, fake = _sets()
    p, r, d, c = ref_prdc(real, fake)
    got_p, got_r = dist.precision_recall(real, fake, block_size=17)
    got_d, got_c = dist.density_coverage(real, fake, block_size=17)
    assert (got_p, got_r) == pytest.approx((p, r), rel=RTOL)
    assert (got_d, got_c) == pytest.approx((d, c), rel=RTOL)
    assert 0 < p < 1 and 0 < c < 1  # the sets overlap partly, so the test can fail
    flat = dist.distribution_metrics(real, fake, kid_subsets=2, kid_subset_size=50, block_size=17)
    assert flat["precision"] == got_p and flat["density"] == got_d
    assert flat["fid"] == pytest.approx(ref_fid(real, fake), rel=RTOL)


def test_per_class_fid_matches_reference_per_class():
    real, fake = _sets(n_real=60, n_fake=60, d=3)
    rl, fl = np.arange(60) % 3, np.arange(60) % 3
    fl[fl == 2] = 1  # class 2 has no synthetic samples
    per = dist.per_class_fid(real, rl, fake, fl, ["a", "b", "c"])
    assert per["a"] == pytest.approx(ref_fid(real[rl == 0], fake[fl == 0]), rel=RTOL)
    assert per["b"] == pytest.approx(ref_fid(real[rl == 1], fake[fl == 1]), rel=RTOL)
    assert per["c"] is None
    flat = dist.distribution_metrics(
        real, fake, real_labels=rl, fake_labels=fl, class_names=["a", "b", "c"], kid_subsets=1
    )
    assert flat["fid_per_class_mean"] == pytest.approx((per["a"] + per["b"]) / 2)


# -- behaviour ------------------------------------------------------------------
def test_identical_sets_are_perfect():
    x = np.random.default_rng(1).normal(size=(200, 8))
    m = dist.distribution_metrics(x, x, kid_subsets=5, kid_subset_size=100)
    assert m["fid"] == pytest.approx(0.0, abs=1e-8)
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    # The unbiased estimate of a set against itself is slightly negative (the
    # diagonal of k(x, x) is left out of one term only); it is tiny next to a shift.
    shifted = dist.kid(x, x + 1, num_subsets=5, subset_size=100)[0]
    assert abs(m["kid"]) < 0.02 * shifted
    # Fewer samples than dimensions (rank-deficient covariance) still gives ~0.
    few = x[:5]
    assert dist.fid(few, few) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("corrupt", ["shift", "noise"])
def test_shifted_or_noised_sets_score_worse(corrupt):
    rng = np.random.default_rng(2)
    real, same = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    bad = same + 1.0 if corrupt == "shift" else same + rng.normal(size=same.shape) * 1.5
    clean = dist.distribution_metrics(real, same, kid_subsets=10, kid_subset_size=200)
    worse = dist.distribution_metrics(real, bad, kid_subsets=10, kid_subset_size=200)
    assert worse["fid"] > clean["fid"] + 0.5
    assert worse["kid"] > clean["kid"]
    assert worse["precision"] < clean["precision"]
    assert worse["density"] < clean["density"]
    assert worse["coverage"] < clean["coverage"]


def test_bad_features_raise_one_line():
    x = np.zeros((10, 3))
    with pytest.raises(DataError, match="3 dimensions but synthetic have 4"):
        dist.fid(x, np.zeros((10, 4)))
    with pytest.raises(DataError, match="2-D"):
        dist.fid(np.zeros((10, 3, 1)), x)
    with pytest.raises(DataError, match="NaN"):
        dist.fid(x, np.full((10, 3), np.nan))
    with pytest.raises(DataError, match="more than 3 samples"):
        dist.precision_recall(x[:3], x)
