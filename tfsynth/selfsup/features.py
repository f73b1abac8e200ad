"""SSL features in NumPy: embedding, k-NN votes and a linear probe.

Features are the encoder's output, L2-normalized, so a dot product is a
cosine similarity (the geometry NT-Xent trains).
"""

from __future__ import annotations

import numpy as np

from tfsynth.errors import DataError


def embed(encoder, images_uint8: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """L2-normalized features (N, D) float32 of uint8 NHWC images.

    Example:

    >>> from tfsynth.selfsup.networks import build_encoder
    >>> f = embed(build_encoder((16, 16, 1), width=4, feature_dim=8), np.zeros((3, 16, 16, 1), np.uint8))
    >>> f.shape, bool(np.allclose((f ** 2).sum(1), 1, atol=1e-4))
    ((3, 8), True)
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"images must be uint8 NHWC, got {images.dtype} {images.shape}")
    out = []
    for s in range(0, len(images), batch_size):
        x = images[s : s + batch_size].astype(np.float32) / 127.5 - 1.0
        out.append(np.asarray(encoder(x, training=False), np.float32))
    f = np.concatenate(out) if out else np.zeros((0, encoder.output_shape[-1]), np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def knn_proba(
    bank: np.ndarray,
    bank_labels: np.ndarray,
    queries: np.ndarray,
    num_classes: int,
    *,
    k: int = 20,
    temperature: float = 0.1,
    exclude_self: bool = False,
    block: int = 2048,
) -> np.ndarray:
    """Class probabilities (Q, K) from the `k` most similar bank features.

    Each neighbour votes for its label with weight exp(similarity /
    `temperature`) (the weighted k-NN of Wu et al., 2018); votes are
    normalized to sum to 1. With `exclude_self` (queries are the bank),
    a point does not vote for itself: leave-one-out.

    Example:

    >>> bank = np.array([[1, 0], [0.9, 0.1], [0, 1.0]], np.float32)
    >>> knn_proba(bank, np.array([0, 0, 1]), np.array([[1.0, 0.0]]), 2, k=2).round(2).tolist()
    [[1.0, 0.0]]
    """
    bank_labels = np.asarray(bank_labels, np.int64)
    k = int(min(k, len(bank) - (1 if exclude_self else 0)))
    if k < 1:
        raise DataError("k-NN needs at least one labelled example besides the query")
    out = np.zeros((len(queries), num_classes), np.float64)
    for s in range(0, len(queries), block):
        sims = queries[s : s + block] @ bank.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, s + rows] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        w = np.exp(np.take_along_axis(sims, top, axis=1) / temperature - 1.0 / temperature)
        votes = out[s : s + block]
        np.add.at(votes, (np.arange(len(top))[:, None], bank_labels[top]), w)
    return (out / np.maximum(out.sum(1, keepdims=True), 1e-300)).astype(np.float32)


def knn_accuracy(features: np.ndarray, labels: np.ndarray, num_classes: int, k: int = 20) -> float:
    """Leave-one-out k-NN accuracy of a labelled set in feature space (the probe metric)."""
    probs = knn_proba(features, labels, features, num_classes, k=k, exclude_self=True)
    return float(np.mean(probs.argmax(1) == np.asarray(labels)))


def linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    weights: np.ndarray | None = None,
    l2: float = 1e-3,
    max_iter: int = 500,
):
    """Multinomial logistic regression on features (L-BFGS); returns `predict_proba`.

    `weights` weigh the examples (e.g. pseudo-labels by confidence); `l2`
    is the weight decay on the coefficients (mean loss + l2 * |W|^2).

    Example:

    >>> x = np.array([[1, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]], np.float32)
    >>> predict = linear_probe(x, np.array([0, 0, 1, 1]), 2)
    >>> predict(np.array([[1.0, 0.0]])).argmax(1).tolist()
    [0]
    """
    from scipy.optimize import minimize

    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.int64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    n, d = x.shape
    onehot = np.eye(num_classes)[y]

    def loss_grad(theta):
        coef, bias = theta[: d * num_classes].reshape(d, num_classes), theta[d * num_classes :]
        logits = x @ coef + bias
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        loss = -(w * np.log(np.maximum((p * onehot).sum(1), 1e-300))).sum() + l2 * (coef**2).sum()
        g = (p - onehot) * w[:, None]
        grad = np.concatenate([(x.T @ g + 2 * l2 * coef).ravel(), g.sum(0)])
        return loss, grad

    theta0 = np.zeros(d * num_classes + num_classes)
    res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    coef = res.x[: d * num_classes].reshape(d, num_classes)
    bias = res.x[d * num_classes :]

    def predict_proba(queries: np.ndarray) -> np.ndarray:
        logits = np.asarray(queries, np.float64) @ coef + bias
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(1, keepdims=True)).astype(np.float32)

    return predict_proba


def label_propagation(
    labeled: np.ndarray,
    labels: np.ndarray,
    unlabeled: np.ndarray,
    num_classes: int,
    *,
    k: int = 10,
    alpha: float = 0.99,
    iterations: int = 20,
    block: int = 2048,
) -> np.ndarray:
    """Class probabilities (U, K) of unlabelled points by label propagation on a k-NN graph.

    Zhou et al. (2004) on the graph of Iscen et al. (2019): each point is
    linked to its `k` most similar points (weight similarity^3, made
    symmetric and normalized D^-1/2 W D^-1/2); F <- alpha S F + Y is
    iterated from the one-hot labels Y, so a label spreads along the dense
    regions of the feature space (a cluster of unlabelled 7s), not only to
    the nearest labelled example. Rows of F are normalized into probabilities.

    Example:

    >>> f = np.array([[1, 0], [0.99, 0.14], [0.95, 0.31], [0, 1], [0.14, 0.99]], np.float32)
    >>> label_propagation(f[[0, 3]], np.array([0, 1]), f[[1, 2, 4]], 2, k=2).argmax(1).tolist()
    [0, 0, 1]
    """
    from scipy import sparse

    x = np.concatenate([labeled, unlabeled]).astype(np.float32)
    n, nl = len(x), len(labeled)
    k = int(min(k, n - 1))
    rows, cols, vals = [], [], []
    for s in range(0, n, block):
        sims = x[s : s + block] @ x.T
        r = np.arange(sims.shape[0])
        sims[r, s + r] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows.append(np.repeat(s + r, k))
        cols.append(top.ravel())
        vals.append(np.maximum(np.take_along_axis(sims, top, axis=1), 0).ravel() ** 3)
    w = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    w = w + w.T
    d = np.asarray(w.sum(1)).ravel()
    inv = 1.0 / np.sqrt(np.maximum(d, 1e-12))
    s_mat = sparse.diags(inv) @ w @ sparse.diags(inv)
    y = np.zeros((n, num_classes), np.float64)
    y[np.arange(nl), np.asarray(labels, np.int64)] = 1.0
    f = y.copy()
    for _ in range(iterations):
        f = alpha * (s_mat @ f) + y
    f = np.maximum(f[nl:], 0)
    total = f.sum(1, keepdims=True)
    return np.where(total > 0, f / np.maximum(total, 1e-300), 1.0 / num_classes).astype(np.float32)
