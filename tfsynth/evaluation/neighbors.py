"""Exact k-nearest-neighbour distances in memory-bounded blocks.

Precision/recall, density/coverage, the privacy distances and the fusion
memorization filter all need Euclidean nearest neighbours between sets of
tens of thousands of feature vectors (or flattened images). A full 50k x 50k
distance matrix is 20 GB in float64, so everything here walks the two sets
in blocks of `block_size` rows, computes squared distances as
``||a||^2 + ||b||^2 - 2 a.b`` in float64 (one matrix product per block pair)
and keeps a running top-k with a partial sort (`np.argpartition`). Memory
is bounded by ``block_size**2`` float64 values, independent of the set sizes.

The results are exact (not approximate): the only difference from a
`scipy.spatial.distance.cdist` reference is float64 round-off, which is
kept small by centring both sets on the reference mean first (the norms,
and so the cancellation in the expansion, shrink).
"""

from __future__ import annotations

import numpy as np

from tfsynth.errors import DataError

DEFAULT_BLOCK_SIZE = 2048


def _as_matrix(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim > 2:
        # Images (N, H, W, C) compare as flattened pixel vectors.
        x = x.reshape(len(x), -1)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    if len(x) == 0:
        raise DataError(f"{name}: the array is empty (0 rows)")
    return x


def _check_pair(query, reference) -> tuple[np.ndarray, np.ndarray]:
    query = _as_matrix(query, "query")
    reference = _as_matrix(reference, "reference")
    if query.shape[1] != reference.shape[1]:
        raise DataError(
            f"query has {query.shape[1]} features but reference has {reference.shape[1]}; "
            "they must match"
        )
    return query, reference


def _check_block_size(block_size: int) -> int:
    block_size = int(block_size)
    if block_size < 1:
        raise DataError(f"block_size must be >= 1, got {block_size}")
    return block_size


def _centred_blocks(query: np.ndarray, reference: np.ndarray):
    """float64 copies centred on the reference mean, plus squared norms."""
    mean = reference.mean(axis=0, dtype=np.float64)
    q = query.astype(np.float64) - mean
    r = reference.astype(np.float64) - mean
    return q, np.einsum("ij,ij->i", q, q), r, np.einsum("ij,ij->i", r, r)


def _squared_block(qb, qnb, rb, rnb) -> np.ndarray:
    d = rb @ qb.T  # (nr, nq); BLAS gemm
    d = d.T
    d *= -2.0
    d += qnb[:, None]
    d += rnb[None, :]
    # Round-off can make a true zero slightly negative.
    np.maximum(d, 0.0, out=d)
    return d


def iter_squared_distances(query, reference, *, block_size: int = DEFAULT_BLOCK_SIZE):
    """Yields (q0, r0, block) of squared Euclidean distances, block by block.

    `block[i, j]` is the squared distance between ``query[q0 + i]`` and
    ``reference[r0 + j]``. Each block has at most `block_size` rows and
    columns; all reference blocks of one query block come consecutively.
    This is the one place that computes distances; the k-NN and ball-count
    functions below are reductions over it.
    """
    query, reference = _check_pair(query, reference)
    bs = _check_block_size(block_size)
    q, qn, r, rn = _centred_blocks(query, reference)
    for q0 in range(0, len(q), bs):
        qb, qnb = q[q0 : q0 + bs], qn[q0 : q0 + bs]
        for r0 in range(0, len(r), bs):
            yield q0, r0, _squared_block(qb, qnb, r[r0 : r0 + bs], rn[r0 : r0 + bs])


def knn(
    query,
    reference,
    k: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each query row among the reference rows.

    Args:
        query: (N, D) array (or (N, H, W, C) images, flattened).
        reference: (M, D) array.
        k: number of neighbours, 1 <= k <= M (M - 1 with `exclude_self`).
        block_size: rows per block; memory is about ``8 * block_size**2``
            bytes plus the float64 copies of the inputs.
        exclude_self: `query` and `reference` are the same set: a row is
            not its own neighbour (its duplicates elsewhere still count).

    Returns:
        (distances, indices), both (N, k), sorted by increasing distance;
        distances are Euclidean (float64).

    Example:

    >>> d, i = knn(np.array([[0.0], [3.0]]), np.array([[1.0], [0.0], [5.0]]), k=2)
    >>> d.tolist(), i.tolist()
    ([[0.0, 1.0], [2.0, 2.0]], [[1, 0], [0, 2]])
    """
    query, reference = _check_pair(query, reference)
    k = int(k)
    available = len(reference) - (1 if exclude_self else 0)
    if exclude_self and len(query) != len(reference):
        raise DataError(
            f"exclude_self needs query and reference to be the same set, got {len(query)} "
            f"and {len(reference)} rows"
        )
    if not 1 <= k <= available:
        raise DataError(f"k must be between 1 and {available} (the reference size), got {k}")
    n = len(query)
    best_d = np.full((n, k), np.inf)
    best_i = np.zeros((n, k), np.int64)
    for q0, r0, d in iter_squared_distances(query, reference, block_size=block_size):
        nq, nr = d.shape
        if exclude_self and r0 < q0 + nq and q0 < r0 + nr:
            rows = np.arange(max(q0, r0), min(q0 + nq, r0 + nr))
            d[rows - q0, rows - r0] = np.inf
        # Keep this block's k best per row, then merge with the running best.
        kb = min(k, nr)
        if kb < nr:
            part = np.argpartition(d, kb - 1, axis=1)[:, :kb]
            cand_d = np.take_along_axis(d, part, axis=1)
        else:
            part = np.broadcast_to(np.arange(nr), (nq, nr))
            cand_d = d
        all_d = np.concatenate([best_d[q0 : q0 + nq], cand_d], axis=1)
        all_i = np.concatenate([best_i[q0 : q0 + nq], part + r0], axis=1)
        keep = np.argpartition(all_d, k - 1, axis=1)[:, :k]
        best_d[q0 : q0 + nq] = np.take_along_axis(all_d, keep, axis=1)
        best_i[q0 : q0 + nq] = np.take_along_axis(all_i, keep, axis=1)
    # Ascending distance; equal distances in index order, like a stable argsort.
    order = np.lexsort((best_i, best_d), axis=-1)
    best_d = np.take_along_axis(best_d, order, axis=1)
    best_i = np.take_along_axis(best_i, order, axis=1)
    return np.sqrt(best_d), best_i


def knn_distances(
    query,
    reference,
    k: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    exclude_self: bool = False,
) -> np.ndarray:
    """Distances (N, k) to the k nearest reference rows, ascending; see `knn`.

    Example:

    >>> x = np.array([[0.0], [1.0], [3.0]])
    >>> knn_distances(x, x, k=1, exclude_self=True).ravel().tolist()
    [1.0, 1.0, 2.0]
    """
    return knn(query, reference, k, block_size=block_size, exclude_self=exclude_self)[0]


def nearest_neighbor(
    query, reference, *, block_size: int = DEFAULT_BLOCK_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (N,) and index (N,) of each query row's nearest reference row.

    Example:

    >>> d, i = nearest_neighbor(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]]))
    >>> d.tolist(), i.tolist()
    ([1.0], [1])
    """
    d, i = knn(query, reference, 1, block_size=block_size)
    return d[:, 0], i[:, 0]


def count_in_balls(
    query,
    centers,
    radii,
    *,
    inclusive: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    """For each query row, how many balls ``(centers[j], radii[j])`` contain it.

    This is the k-NN manifold test of improved precision/recall (a point is
    on the manifold when at least one ball contains it) and of density (the
    number of balls). `inclusive` decides whether a point on the sphere
    counts (``d <= r``, Kynkäänniemi et al.) or not (``d < r``, Naeem et al.).

    Returns:
        int64 counts, shape (N,).

    Example:

    >>> count_in_balls(np.array([[0.0], [2.0]]), np.array([[0.0], [1.0]]), [1.0, 1.0]).tolist()
    [2, 1]
    """
    radii = np.asarray(radii, np.float64).ravel()
    _, centers_m = _check_pair(query, centers)
    if len(radii) != len(centers_m):
        raise DataError(f"{len(centers_m)} centers but {len(radii)} radii; counts must match")
    r2 = radii**2
    counts = np.zeros(len(np.asarray(query)), np.int64)
    for q0, r0, d in iter_squared_distances(query, centers, block_size=block_size):
        rb = r2[r0 : r0 + d.shape[1]][None, :]
        inside = d <= rb if inclusive else d < rb
        counts[q0 : q0 + d.shape[0]] += inside.sum(axis=1)
    return counts
