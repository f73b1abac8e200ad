"""Distribution metrics between real and synthetic feature vectors.

All functions take feature arrays (N, D) (from `tfsynth.evaluation.features`)
and return plain floats, computed in float64:

- `fid`: Fréchet distance between Gaussians fitted to the two sets
  (Heusel et al. 2017). Lower is better; identical sets give 0.
- `kid`: kernel inception distance (Bińkowski et al. 2018), the unbiased
  MMD^2 estimate with the cubic polynomial kernel
  ``k(x, y) = (x.y / D + 1)^3``, averaged over random subsets; returns the
  mean and standard deviation over subsets.
- `precision_recall`: improved precision and recall (Kynkäänniemi et al.
  2019): the share of synthetic samples inside the real k-NN manifold
  (balls of radius = distance to the k-th real neighbour, k = 3), and the
  share of real samples inside the synthetic manifold.
- `density_coverage`: density and coverage (Naeem et al. 2020, k = 5):
  how many real balls contain each synthetic sample (divided by k), and the
  share of real balls that contain at least one synthetic sample.
- `per_class_fid`: FID within each class for labelled data.

k-NN work goes through `tfsynth.evaluation.neighbors`, so 50k x 50k sets fit
in memory. Each function is checked in tests against a plain NumPy/SciPy
implementation of the paper's definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfsynth.errors import DataError
from tfsynth.evaluation.neighbors import DEFAULT_BLOCK_SIZE, iter_squared_distances, knn_distances

PR_K = 3  # Kynkäänniemi et al. 2019
DC_K = 5  # Naeem et al. 2020


def _features(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"{name}: features must be a 2-D array (N, D), got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise DataError(f"{name}: features must be numeric, got dtype {x.dtype}")
    if len(x) < 2:
        raise DataError(f"{name}: need at least 2 feature vectors, got {len(x)}")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name}: features contain NaN or infinite values")
    return x


def _pair(real, fake) -> tuple[np.ndarray, np.ndarray]:
    real, fake = _features(real, "real"), _features(fake, "synthetic")
    if real.shape[1] != fake.shape[1]:
        raise DataError(
            f"real features have {real.shape[1]} dimensions but synthetic have {fake.shape[1]}"
        )
    return real, fake


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (unbiased, N - 1) in float64."""
    x = _features(features, "features").astype(np.float64)
    mu = x.mean(axis=0)
    xc = x - mu
    return mu, (xc.T @ xc) / (len(x) - 1)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``. The trace
    term is computed as ``tr((S1^(1/2) S2 S1^(1/2))^(1/2))``, a symmetric
    PSD eigenproblem, which is stable for rank-deficient covariances (fewer
    samples than dimensions) where `scipy.linalg.sqrtm` needs an offset.

    Example:

    >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))
    2.0
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    w = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(w, 0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
    # Round-off can make the distance of a set to itself slightly negative.
    return max(value, 0.0)


def fid(real, fake) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    Example:

    >>> x = np.random.default_rng(0).normal(size=(100, 4))
    >>> round(fid(x, x), 6)
    0.0
    """
    real, fake = _pair(real, fake)
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def _cubic_kernel_sum(gram: np.ndarray, d: int) -> float:
    """Sum of (gram / d + 1)^3, computed in place (gram is overwritten)."""
    gram *= 1.0 / d
    gram += 1.0
    cube = gram * gram
    cube *= gram
    return float(cube.sum())


def _within_kernel_sum(x: np.ndarray) -> float:
    """Sum over i != j of (x_i.x_j / D + 1)^3.

    BLAS syrk fills only the upper triangle of x x^T, half a matrix product.
    The zero lower triangle contributes (0 / D + 1)^3 = 1 per entry, which is
    subtracted exactly; the diagonal is subtracted too.
    """
    from scipy.linalg.blas import dsyrk

    m, d = x.shape
    gram = dsyrk(1.0, x.T, trans=1)  # x.T is Fortran-ordered: no copy
    diag = (np.diagonal(gram) / d + 1.0) ** 3
    total = _cubic_kernel_sum(gram, d)
    upper = total - diag.sum() - m * (m - 1) / 2
    return 2.0 * upper


def kid(
    real,
    fake,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel inception distance: (mean, std) of unbiased MMD^2 over subsets.

    Each subset draws `subset_size` rows (without replacement; capped at the
    smaller set) from each set; the polynomial kernel is
    ``(x.y / D + 1)^3``. The estimate is unbiased, so it can be slightly
    negative for sets from the same distribution.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 1
    >>> kid(a, b, num_subsets=5, subset_size=100)[0] > 0.1
    True
    """
    real, fake = _pair(real, fake)
    if num_subsets < 1:
        raise DataError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(int(subset_size), len(real), len(fake))
    if m < 2:
        raise DataError(f"subset_size must be >= 2, got {subset_size}")
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        x = real[rng.choice(len(real), m, replace=False)].astype(np.float64)
        y = fake[rng.choice(len(fake), m, replace=False)].astype(np.float64)
        # Unbiased: the within-set sums leave out the diagonal (i == j).
        within = (_within_kernel_sum(x) + _within_kernel_sum(y)) / (m * (m - 1))
        values[s] = within - 2 * _cubic_kernel_sum(x @ y.T, d) / (m * m)
    return float(values.mean()), float(values.std())


def manifold_radii(
    features, ks: Sequence[int], *, block_size: int = DEFAULT_BLOCK_SIZE
) -> dict[int, np.ndarray]:
    """Distance from each row to its k-th nearest other row, for each k in `ks`.

    One k-NN pass serves several k (precision/recall use 3, density/coverage 5).
    """
    kmax = max(ks)
    if len(features) <= kmax:
        raise DataError(
            f"need more than {kmax} samples for k = {kmax} neighbours, got {len(features)}"
        )
    d = knn_distances(features, features, kmax, exclude_self=True, block_size=block_size)
    return {k: d[:, k - 1] for k in ks}


def _cross_pass(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    pr_real_radii: np.ndarray | None = None,
    pr_fake_radii: np.ndarray | None = None,
    dc_real_radii: np.ndarray | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, np.ndarray]:
    """One blocked pass over synthetic x real distances serving all four metrics.

    Rows are synthetic samples, columns real ones. Per block: precision
    (row in any real ball, ``d <= r``), density (row's count of real balls,
    ``d < r``), recall (column in any synthetic ball, ``d <= r``) and
    coverage (column's nearest synthetic distance). Radii left as None skip
    their metric. Squared distances are compared with squared radii.
    """
    m, n = len(fake), len(real)
    sq = lambda r: None if r is None else np.asarray(r, np.float64) ** 2  # noqa: E731
    pr_real, pr_fake, dc_real = sq(pr_real_radii), sq(pr_fake_radii), sq(dc_real_radii)
    out: dict[str, np.ndarray] = {}
    if pr_real is not None:
        out["precision"] = np.zeros(m, bool)
    if pr_fake is not None:
        out["recall"] = np.zeros(n, bool)
    if dc_real is not None:
        out["density"] = np.zeros(m, np.int64)
        out["nearest"] = np.full(n, np.inf)
    for q0, r0, d in iter_squared_distances(fake, real, block_size=block_size):
        rows, cols = slice(q0, q0 + d.shape[0]), slice(r0, r0 + d.shape[1])
        if pr_real is not None:
            out["precision"][rows] |= (d <= pr_real[cols][None, :]).any(axis=1)
        if pr_fake is not None:
            out["recall"][cols] |= (d <= pr_fake[rows][:, None]).any(axis=0)
        if dc_real is not None:
            out["density"][rows] += (d < dc_real[cols][None, :]).sum(axis=1)
            np.minimum(out["nearest"][cols], d.min(axis=0), out=out["nearest"][cols])
    if dc_real is not None:
        out["coverage"] = out.pop("nearest") < dc_real
    return out


def precision_recall(
    real,
    fake,
    *,
    k: int = PR_K,
    block_size: int = DEFAULT_BLOCK_SIZE,
    real_radii: np.ndarray | None = None,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    precision: share of synthetic samples within the k-NN radius of at least
    one real sample; recall: share of real samples within the k-NN radius of
    at least one synthetic sample (``d <= r``, as in the paper's code).

    Example:

    >>> x = np.random.default_rng(0).normal(size=(50, 3))
    >>> precision_recall(x, x)
    (1.0, 1.0)
    """
    real, fake = _pair(real, fake)
    if real_radii is None:
        real_radii = manifold_radii(real, [k], block_size=block_size)[k]
    fake_radii = manifold_radii(fake, [k], block_size=block_size)[k]
    r = _cross_pass(
        real, fake, pr_real_radii=real_radii, pr_fake_radii=fake_radii, block_size=block_size
    )
    return float(r["precision"].mean()), float(r["recall"].mean())


def density_coverage(
    real,
    fake,
    *,
    k: int = DC_K,
    block_size: int = DEFAULT_BLOCK_SIZE,
    real_radii: np.ndarray | None = None,
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020).

    density: ``1 / (k M) * sum_j #{i : d(fake_j, real_i) < r_i}``, which is
    about 1 when the sets match and exceeds 1 when synthetic samples crowd
    into dense real regions; coverage: share of real samples whose k-NN
    ball contains at least one synthetic sample (``d < r``, as in the
    authors' code).

    Example:

    >>> x = np.random.default_rng(0).normal(size=(50, 3))
    >>> density_coverage(x, x)[1]
    1.0
    """
    real, fake = _pair(real, fake)
    if real_radii is None:
        real_radii = manifold_radii(real, [k], block_size=block_size)[k]
    r = _cross_pass(real, fake, dc_real_radii=real_radii, block_size=block_size)
    return float(r["density"].sum() / (k * len(fake))), float(r["coverage"].mean())


def per_class_fid(
    real,
    real_labels,
    fake,
    fake_labels,
    class_names: Sequence[str] | None = None,
    *,
    min_samples: int = 2,
) -> dict[str, float | None]:
    """FID computed within each class; None for classes with too few samples.

    Returns:
        {class_name: fid or None}; classes are 0..K-1 with K from
        `class_names` or the largest label.
    """
    real, fake = _pair(real, fake)
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    if len(real_labels) != len(real) or len(fake_labels) != len(fake):
        raise DataError("per-class FID: labels must have one entry per feature row")
    k = (
        len(class_names)
        if class_names is not None
        else int(max(real_labels.max(), fake_labels.max())) + 1
    )
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    out: dict[str, float | None] = {}
    for c in range(k):
        rc, fc = real[real_labels == c], fake[fake_labels == c]
        enough = min(len(rc), len(fc)) >= max(2, min_samples)
        out[names[c]] = fid(rc, fc) if enough else None
    return out


def distribution_metrics(
    real,
    fake,
    *,
    real_labels=None,
    fake_labels=None,
    class_names: Sequence[str] | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, float | None]:
    """All distribution metrics in one flat dict (one real k-NN pass shared).

    Keys: fid, kid, kid_std, precision, recall, density, coverage, and when
    labels are given ``fid_per_class.<name>`` and ``fid_per_class_mean``.
    """
    real, fake = _pair(real, fake)
    # Three distance passes in all: real-real and synthetic-synthetic k-NN
    # radii, then one synthetic x real pass for all four manifold metrics.
    radii = manifold_radii(real, [PR_K, DC_K], block_size=block_size)
    fake_radii = manifold_radii(fake, [PR_K], block_size=block_size)[PR_K]
    cross = _cross_pass(
        real,
        fake,
        pr_real_radii=radii[PR_K],
        pr_fake_radii=fake_radii,
        dc_real_radii=radii[DC_K],
        block_size=block_size,
    )
    kid_mean, kid_std = kid(
        real, fake, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
    )
    precision, recall = float(cross["precision"].mean()), float(cross["recall"].mean())
    density = float(cross["density"].sum() / (DC_K * len(fake)))
    coverage = float(cross["coverage"].mean())
    out: dict[str, float | None] = {
        "fid": fid(real, fake),
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
    }
    if real_labels is not None and fake_labels is not None:
        per = per_class_fid(real, real_labels, fake, fake_labels, class_names)
        out.update({f"fid_per_class.{name}": v for name, v in per.items()})
        known = [v for v in per.values() if v is not None]
        out["fid_per_class_mean"] = float(np.mean(known)) if known else None
    return out
