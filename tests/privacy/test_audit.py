"""The membership-inference audit against brute force and on leaking / non-leaking data."""

import numpy as np
import pytest

from tfsynth.privacy.audit import membership_audit, roc_auc, roc_curve, tpr_at_fpr


def test_auc_is_the_pairwise_win_rate_with_ties_halved():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    wins = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
    assert roc_auc(a, b) == pytest.approx(wins, abs=1e-12)
    fpr, tpr = roc_curve(a, b)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_tpr_at_fpr_counts_members_above_the_strictest_threshold():
    members = np.array([10.0, 9.0, 1.0, 0.5])
    nonmembers = np.r_[9.5, 0.8, np.zeros(98)]  # two non-members outscore some members
    # FPR <= 1% admits one false alarm of 100: the threshold 1.0 catches three members.
    assert tpr_at_fpr(members, nonmembers, 0.01) == 0.75
    assert tpr_at_fpr(members, nonmembers, 0.0) == 0.25


def test_attacks_find_copies_and_not_independent_samples():
    rng = np.random.default_rng(1)
    train, holdout = rng.random((300, 30)), rng.random((600, 30))
    leak = membership_audit(train, holdout, train[:300] + 0.01 * rng.random((300, 30)), seed=0)
    assert leak["mia_dcr_auc"] > 0.95 and leak["mia_dcr_tpr_at_1_fpr"] > 0.5
    assert leak["mia_density_auc"] > 0.7
    fresh = membership_audit(train, holdout, rng.random((300, 30)), seed=0)
    assert abs(fresh["mia_dcr_auc"] - 0.5) < 0.08 and abs(fresh["mia_density_auc"] - 0.5) < 0.08
    assert fresh["mia_members"] == fresh["mia_nonmembers"] == 300
