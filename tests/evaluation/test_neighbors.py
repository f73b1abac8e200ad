import numpy as np
import pytest
from scipy.spatial.distance import cdist

from tfsynth.errors import DataError
from tfsynth.evaluation.neighbors import (
    count_in_balls,
    knn,
    knn_distances,
    nearest_neighbor,
)


def _ref_knn(q, r, k, exclude_self=False):
    d = cdist(q.astype(np.float64), r.astype(np.float64))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, axis=1), idx


@pytest.mark.parametrize("block_size", [1, 7, 64, 4096])
def test_knn_matches_cdist_for_any_block_size(block_size):
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(53, 6)), rng.normal(size=(41, 6)) + 0.5
    d, i = knn(q, r, 4, block_size=block_size)
    rd, ri = _ref_knn(q, r, 4)
    np.testing.assert_allclose(d, rd, rtol=1e-9)
    np.testing.assert_array_equal(i, ri)


def test_exclude_self_skips_only_the_row_itself():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    x[5] = x[6]  # a duplicate elsewhere is still a neighbour at distance 0
    d = knn_distances(x, x, 3, exclude_self=True, block_size=8)
    rd, _ = _ref_knn(x, x, 3, exclude_self=True)
    np.testing.assert_allclose(d, rd, rtol=1e-6, atol=1e-6)
    assert d[5, 0] == pytest.approx(0.0, abs=1e-6)
    # Without exclusion every row's nearest neighbour is itself.
    np.testing.assert_allclose(knn_distances(x, x, 1)[:, 0], 0.0, atol=1e-6)


def test_nearest_neighbor_on_images_and_large_offsets():
    rng = np.random.default_rng(2)
    # A large common offset is where ||a||^2 + ||b||^2 - 2ab loses digits without centring.
    q = rng.integers(0, 256, (20, 4, 4, 1)).astype(np.uint8)
    r = rng.integers(0, 256, (25, 4, 4, 1)).astype(np.uint8)
    d, i = nearest_neighbor(q, r, block_size=6)
    rd, ri = _ref_knn(q.reshape(20, -1), r.reshape(25, -1), 1)
    np.testing.assert_allclose(d, rd[:, 0], rtol=1e-9)
    np.testing.assert_array_equal(i, ri[:, 0])
    big_q, big_r = rng.normal(size=(10, 5)) + 1e6, rng.normal(size=(12, 5)) + 1e6
    np.testing.assert_allclose(
        knn_distances(big_q, big_r, 2), _ref_knn(big_q, big_r, 2)[0], rtol=1e-6
    )


@pytest.mark.parametrize("inclusive", [True, False])
def test_count_in_balls_matches_reference(inclusive):
    rng = np.random.default_rng(3)
    q, c = rng.normal(size=(40, 4)), rng.normal(size=(35, 4))
    radii = rng.uniform(0.5, 2.0, size=35)
    d = cdist(q, c)
    ref = (d <= radii[None] if inclusive else d < radii[None]).sum(axis=1)
    got = count_in_balls(q, c, radii, inclusive=inclusive, block_size=9)
    np.testing.assert_array_equal(got, ref)


def test_bad_input_is_one_clear_error():
    x = np.zeros((4, 3))
    with pytest.raises(DataError, match="3 features but reference has 2"):
        knn(x, np.zeros((4, 2)), 1)
    with pytest.raises(DataError, match="k must be between 1 and 3"):
        knn(x, x, 4, exclude_self=True)
    with pytest.raises(DataError, match="empty"):
        nearest_neighbor(np.zeros((0, 3)), x)
    with pytest.raises(DataError, match="block_size"):
        knn(x, x, 1, block_size=0)
    with pytest.raises(DataError, match="4 centers but 3 radii"):
        count_in_balls(x, x, [1, 2, 3])
