import numpy as np
import pytest

from tfsynth.errors import ConfigError
from tfsynth.fusion.plan import apportion, class_totals, solve_counts, source_totals

BIG = 10**9


def test_apportion_is_exact_and_ties_go_to_lower_index():
    assert apportion(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert apportion(7, ["0.5", "0.25", "0.25"]).tolist() == [3, 2, 2]
    assert apportion(0, [1, 2]).tolist() == [0, 0]
    rng = np.random.default_rng(0)
    for _ in range(50):
        w = rng.integers(0, 5, 6)
        w[0] += 1
        total = int(rng.integers(0, 1000))
        parts = apportion(total, w.tolist())
        assert parts.sum() == total
        # Largest remainder: every part is the floor or the ceiling of its quota.
        quota = total * w / w.sum()
        assert np.all(parts >= np.floor(quota)) and np.all(parts <= np.ceil(quota))


def test_source_totals_ratios_counts_and_default_size():
    assert source_totals("real=0.5,aug=0.25,gen=0.25", None, 1001, {}) == {
        "real": 501,
        "aug": 250,
        "gen": 250,
    }
    # Without --size, all real examples are used once.
    assert source_totals("real=0.5,gen=0.5", None, None, {"real": 300}) == {
        "real": 300,
        "gen": 300,
    }
    assert source_totals(None, "gen=7,real=5", None, {}) == {"real": 5, "gen": 7}


@pytest.mark.parametrize(
    "ratios,counts,size,message",
    [
        ("real=0.5,foo=0.5", None, 10, "unknown source 'foo'"),
        ("real=x", None, 10, "expected a number"),
        ("real=-1", None, 10, ">= 0"),
        ("real0.5", None, 10, "NAME=VALUE"),
        ("real=0,gen=0", None, 10, "at least one ratio"),
        (None, "real=1.5", None, "whole numbers"),
        (None, "real=5", 6, "differs from the sum"),
        ("real=1", "real=1", None, "exactly one"),
        ("gen=1", None, None, "--size is required"),
        ("real=1", None, 0, "positive integer"),
    ],
)
def test_source_totals_bad_input(ratios, counts, size, message):
    with pytest.raises(ConfigError, match=message):
        source_totals(ratios, counts, size, {"real": 10})


def test_class_totals_targets():
    names = ["a", "b", "c"]
    assert class_totals("match", 20, names, [5, 3, 2]).tolist() == [10, 6, 4]
    assert class_totals("uniform", 10, names, [5, 3, 2]).tolist() == [4, 3, 3]
    assert class_totals("a=1,c=3", 8, names, [5, 3, 2]).tolist() == [2, 0, 6]
    assert class_totals("0=1,2=1", 4, names, [5, 3, 2]).tolist() == [2, 0, 2]
    assert class_totals([1, 1, 2], 8, names, [5, 3, 2]).tolist() == [2, 2, 4]
    for bad, msg in [
        ("zzz=1", "unknown class 'zzz'"),
        ([1, 2], "expected 3 weights"),
        ("a=0", "all class weights are 0"),
        ("bogus", "match, uniform"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            class_totals(bad, 8, names, [5, 3, 2])


@pytest.mark.parametrize("target", ["match", "uniform", "a=2,e=3"])
def test_solve_counts_meets_row_and_column_sums_exactly(target):
    real = np.array([500, 300, 150, 50, 3])
    names = list("abcde")
    totals = source_totals("real=0.25,aug=0.25,gen=0.5", None, 1000, {})
    targets = class_totals(target, 1000, names, real)
    caps = np.array([real, np.where(real > 0, BIG, 0), np.full(5, BIG)])
    x = solve_counts(list(totals.values()), targets, caps, [False, True, True])
    assert x.sum(1).tolist() == list(totals.values())
    assert x.sum(0).tolist() == targets.tolist()
    assert np.all(x >= 0) and np.all(x <= caps)


def test_solve_counts_rigid_sources_only_and_infeasible():
    # A dataset directory as 'gen' (a fixed class histogram) and real data.
    caps = np.array([[5, 5, 0], [1, 1, 10]])
    x = solve_counts([6, 6], [4, 4, 4], caps, [False, False])
    assert x.sum(0).tolist() == [4, 4, 4] and x.sum(1).tolist() == [6, 6]
    with pytest.raises(ConfigError, match="class 'c' needs 12 examples but the sources can give"):
        solve_counts([6, 6], [0, 0, 12], caps, [False, False], class_names="abc")
    with pytest.raises(ConfigError, match="asks for 20 examples but the source has only 10"):
        solve_counts([20, 0], [10, 10, 0], caps, [False, False])
    # Every class reachable, but real must give all of its 10 while 'a' wants only 2.
    with pytest.raises(ConfigError, match="with these per-source totals"):
        solve_counts([10, 5], [2, 8, 5], np.array([[5, 5, 0], [BIG, BIG, BIG]]), [False, True])
