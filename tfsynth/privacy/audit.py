"""Membership-inference audit: can an attacker holding the synthetic data tell who trained it?

Two black-box attacks score a real image by what the synthetic set says
about it; members are training images, non-members real holdout images the
generator never saw (equal numbers of each). A score that separates them
(AUC above 0.5, a TPR at 1% FPR above 0.01) is a leak the generator's
training caused; DP training bounds how far any attack can get.

- distance to closest record (DCR): score = -(distance to the nearest
  synthetic image); a generator that copies puts members closer.
- density ratio (as in DOMIAS, van Breugel et al. 2023): score =
  log p_synthetic(x) - log p_reference(x), Gaussian kernel densities in
  the principal components of the synthetic images; the reference density
  comes from a half of the holdout kept out of the non-members, so the
  attack asks "is x more typical of the synthetic data than of real data
  in general", the signature of overfitting to x.

Example:

>>> rng = np.random.default_rng(0)
>>> train, holdout = rng.random((200, 16)), rng.random((400, 16))
>>> a = membership_audit(train, holdout, train[:100] + 0.01, seed=0)  # near-copies
>>> a["mia_dcr_auc"] > 0.7, round(roc_auc(np.array([2.0, 3.0]), np.array([1.0, 2.0])), 3)
(True, 0.875)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfsynth.evaluation.neighbors import nearest_neighbor

PCA_COMPONENTS = 20
TARGET_FPR = 0.01
ATTACKS = ("dcr", "density")


def roc_curve(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) of every threshold, from (0, 0) to (1, 1)."""
    scores = np.concatenate([members, nonmembers])
    is_member = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the end of each tie group
    tp, fp = np.cumsum(is_member)[last], np.cumsum(1 - is_member)[last]
    return np.r_[0.0, fp / len(nonmembers)], np.r_[0.0, tp / len(members)]


def roc_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """P(member score > non-member score) + P(tie) / 2 (the area under `roc_curve`)."""
    fpr, tpr = roc_curve(members, nonmembers)
    return float(np.trapezoid(tpr, fpr))


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float = TARGET_FPR) -> float:
    """The highest true positive rate of a threshold with false positive rate <= `fpr`."""
    f, t = roc_curve(members, nonmembers)
    return float(t[f <= fpr].max())


def _pca(fit: np.ndarray, k: int):
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    basis = vt[: min(k, vt.shape[0])].T
    return lambda x: (x - mean) @ basis


def _log_kde(points: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Gaussian kernel log-density of `points` at `query` (Scott's bandwidth per dimension)."""
    n, d = points.shape
    h = points.std(axis=0) * n ** (-1.0 / (d + 4)) + 1e-8
    p, q = points / h, query / h
    sq = (q**2).sum(1)[:, None] + (p**2).sum(1)[None, :] - 2.0 * q @ p.T
    a = -0.5 * np.maximum(sq, 0.0)
    top = a.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(a - top).sum(axis=1))) - np.log(n) - np.log(h).sum()


def membership_audit(train, holdout, synthetic, *, seed: int = 0) -> dict[str, Any]:
    """Both attacks' AUC and TPR at 1% FPR (vectors (N, D) in one space, e.g. pixels).

    Half of `holdout` (shuffled with `seed`) is the density attack's
    reference, the other half the non-members; as many training rows,
    drawn with `seed`, are the members. Also returns the ROC curves under
    ``roc`` (for the report's figure; not a summary value).
    """
    rng = np.random.default_rng(seed)
    holdout = np.asarray(holdout, np.float64)[rng.permutation(len(holdout))]
    reference, nonmembers = np.array_split(holdout, 2)
    m = min(len(nonmembers), len(train))
    members = np.asarray(train, np.float64)[np.sort(rng.choice(len(train), m, replace=False))]
    nonmembers, synthetic = nonmembers[:m], np.asarray(synthetic, np.float64)
    scores = {
        "dcr": tuple(-nearest_neighbor(x, synthetic)[0] for x in (members, nonmembers)),
    }
    project = _pca(synthetic, PCA_COMPONENTS)
    syn, ref = project(synthetic), project(reference)
    scores["density"] = tuple(
        _log_kde(syn, project(x)) - _log_kde(ref, project(x)) for x in (members, nonmembers)
    )
    out: dict[str, Any] = {"mia_members": m, "mia_nonmembers": m, "mia_reference": len(reference)}
    for name, (s_in, s_out) in scores.items():
        out[f"mia_{name}_auc"] = roc_auc(s_in, s_out)
        out[f"mia_{name}_tpr_at_1_fpr"] = tpr_at_fpr(s_in, s_out)
    out["roc"] = {name: roc_curve(*s) for name, s in scores.items()}
    return out


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str | None = None):
    """The attacks' ROC curves (log-scaled FPR shows the 1% region) with the chance line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.0))
    grid = np.logspace(-3, 0, 200)
    ax.plot(grid, grid, "k:", label="chance")
    for name, (fpr, tpr) in curves.items():
        ax.plot(np.maximum(fpr, 1e-3), tpr, label=f"{name} (AUC {np.trapezoid(tpr, fpr):.3f})")
    ax.axvline(TARGET_FPR, color="grey", lw=0.5)
    ax.set(xscale="log", xlim=(1e-3, 1), ylim=(0, 1), xlabel="false positive rate")
    ax.set(ylabel="true positive rate", title=title or "membership inference (members: train)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
