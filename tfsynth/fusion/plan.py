"""The fusion plan: proportions and a class target -> exact per-source, per-class counts.

D' mixes up to three sources (``real``, ``aug``, ``gen``). The user gives the
mix as ratios (``real=0.5,aug=0.25,gen=0.25``) plus a target size, or as
counts (``real=5000,gen=5000``), and a class target: ``match`` (the real
class distribution), ``uniform``, ``pool`` (each source's classes as it holds
them, `pool_targets`), or explicit weights (``0=1,1=2`` or
``cat=0.3,dog=0.7``). `solve_counts` turns these into an integer matrix
``counts[source, class]`` whose row sums are the per-source totals and whose
column sums are the per-class totals, *exactly*, without asking a source for
more examples of a class than it has.

Rounding uses the largest-remainder method in exact rational arithmetic, so
the same inputs give the same counts on every machine (shards built by
different workers must agree on the plan).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from tfsynth.errors import ConfigError

SOURCES = ("real", "aug", "gen", "pseudo")  # new sources go last: seeds use the index
CLASS_TARGETS = ("match", "uniform")
POOL = "pool"  # a class target that depends on the sources: see `pool_targets`


def _fraction(value, where: str) -> Fraction:
    try:
        f = Fraction(str(value).strip()) if isinstance(value, str) else Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if f < 0:
        raise ConfigError(f"{where}: expected a number >= 0, got {value!r}")
    return f


def parse_pairs(text: str | Mapping, where: str) -> dict[str, str]:
    """Parses ``"a=1,b=2"`` (or a mapping) into an ordered dict of strings.

    >>> parse_pairs("real=0.5, gen=0.5", "--ratios")
    {'real': '0.5', 'gen': '0.5'}
    """
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: expected NAME=VALUE[,NAME=VALUE...], got {text!r}")
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"{where}: expected NAME=VALUE[,NAME=VALUE...], got {text!r}")
        if key in out:
            raise ConfigError(f"{where}: {key!r} is given twice")
        out[key] = value
    return out


def apportion(total: int, weights: Sequence) -> np.ndarray:
    """Splits `total` into integers proportional to `weights` (largest remainder).

    The parts sum to `total` exactly; ties go to the lower index. Exact
    rational arithmetic makes the result the same on every machine.

    >>> apportion(10, [1, 1, 1]).tolist()
    [4, 3, 3]
    >>> apportion(7, [0.5, 0.25, 0.25]).tolist()
    [3, 2, 2]
    """
    w = [_fraction(x, "weight") for x in weights]
    s = sum(w)
    if total == 0 or s == 0:
        if total:
            raise ConfigError("cannot split a positive total over weights that are all 0")
        return np.zeros(len(w), np.int64)
    quotas = [total * x / s for x in w]
    base = [q.numerator // q.denominator for q in quotas]
    left = total - sum(base)
    order = sorted(range(len(w)), key=lambda i: (-(quotas[i] - base[i]), i))
    for i in order[:left]:
        base[i] += 1
    return np.asarray(base, np.int64)


def source_totals(
    ratios: str | Mapping | None,
    counts: str | Mapping | None,
    size: int | None,
    default_size: Mapping[str, int],
) -> dict[str, int]:
    """Per-source example counts from ratios (+ size) or from counts.

    Args:
        ratios: ``real=0.5,aug=0.25,gen=0.25`` (weights, normalized).
        counts: ``real=5000,gen=2500`` (exact numbers); excludes `ratios`.
        size: the total size of D' with `ratios`. When None, every source
            named in `default_size` with a ratio > 0 is used whole once
            (for ``real``: all real examples), i.e. size = min over those
            of n_s / ratio_s.
        default_size: the number of examples a source holds, for the
            default size (e.g. ``{"real": 10000}``).

    Returns:
        An ordered dict source -> count over the sources with a count > 0.
    """
    if (ratios is None) == (counts is None):
        raise ConfigError("give exactly one of --ratios and --counts")
    where = "--ratios" if counts is None else "--counts"
    pairs = parse_pairs(ratios if counts is None else counts, where)
    for key in pairs:
        if key not in SOURCES:
            raise ConfigError(f"{where}: unknown source {key!r}; expected {', '.join(SOURCES)}")
    values = {k: _fraction(v, f"{where} {k}") for k, v in pairs.items()}
    if counts is not None:
        if any(v.denominator != 1 for v in values.values()):
            raise ConfigError(f"{where}: counts must be whole numbers, got {counts!r}")
        totals = {k: int(v) for k, v in values.items()}
        if size is not None and size != sum(totals.values()):
            raise ConfigError(
                f"--size: {size} differs from the sum of --counts ({sum(totals.values())})"
            )
    else:
        total_w = sum(values.values())
        if total_w == 0:
            raise ConfigError(f"{where}: at least one ratio must be > 0, got {ratios!r}")
        if size is None:
            candidates = [
                Fraction(n) * total_w / values[k]
                for k, n in default_size.items()
                if values.get(k, 0) > 0
            ]
            if not candidates:
                raise ConfigError("--size is required when no ratio names a source of known size")
            size = int(min(candidates))
        if not isinstance(size, int) or size < 1:
            raise ConfigError(f"--size: expected a positive integer, got {size!r}")
        keys = list(values)
        totals = dict(zip(keys, apportion(size, [values[k] for k in keys]).tolist()))
    totals = {k: int(v) for k, v in totals.items() if v > 0}
    if not totals:
        raise ConfigError(f"{where}: D' would be empty")
    return {k: totals[k] for k in SOURCES if k in totals}


def class_totals(
    target: str | Sequence | Mapping, size: int, class_names: Sequence[str], real_counts
) -> np.ndarray:
    """Per-class example counts of D' for a class target.

    Args:
        target: ``"match"`` (proportional to `real_counts`), ``"uniform"``,
            or explicit weights: ``"0=1,1=3"``, ``"cat=1,dog=3"``, a list
            of one weight per class, or a mapping. Classes not named get 0.
        size: the size of D'.
        class_names: the class names of the real data.
        real_counts: examples per class in the real data.

    >>> class_totals("uniform", 10, ["a", "b", "c"], [5, 3, 2]).tolist()
    [4, 3, 3]
    >>> class_totals("b=1", 6, ["a", "b"], [1, 1]).tolist()
    [0, 6]
    """
    k = len(class_names)
    if isinstance(target, str) and target.strip() in CLASS_TARGETS:
        weights = list(real_counts) if target.strip() == "match" else [1] * k
    elif isinstance(target, (list, tuple, np.ndarray)):
        if len(target) != k:
            raise ConfigError(
                f"--class-target: expected {k} weights (one per class), got {len(target)}"
            )
        weights = [_fraction(w, f"--class-target class {i}") for i, w in enumerate(target)]
    else:
        try:
            pairs = parse_pairs(target, "--class-target")
        except ConfigError:
            raise ConfigError(
                f"--class-target: expected match, uniform or CLASS=WEIGHT[,...], got {target!r}"
            ) from None
        weights = [Fraction(0)] * k
        for key, value in pairs.items():
            if key in class_names:
                i = list(class_names).index(key)
            elif key.isdigit() and int(key) < k:
                i = int(key)
            else:
                raise ConfigError(
                    f"--class-target: unknown class {key!r}; classes are {', '.join(class_names)}"
                )
            weights[i] = _fraction(value, f"--class-target {key}")
    if sum(_fraction(w, "weight") for w in weights) == 0:
        raise ConfigError(f"--class-target: all class weights are 0 ({target!r})")
    return apportion(size, weights)


def pool_targets(totals: Sequence[int], caps, flexible: Sequence[bool], real_counts) -> np.ndarray:
    """Class totals of the target ``pool``: what the sources give as they hold it, summed.

    A fixed source (real data, a dataset directory such as pseudo-labels)
    gives its total in proportion to the examples it holds per class, a
    flexible one (a policy, a conditional generator) in proportion to the
    real data's. So a fixed source is never asked for more of a class than
    it has, which ``match`` does when its classes are not distributed like
    the real ones (pseudo-labelling keeps more of the easy classes).

    >>> caps = np.array([[5, 5], [30, 5]])  # real 5/5; pseudo kept 30/5
    >>> pool_targets([10, 35], caps, [False, False], [5, 5]).tolist()
    [35, 10]
    """
    out = np.zeros(np.shape(caps)[1], np.int64)
    for total, cap, flex in zip(totals, np.asarray(caps), flexible):
        out += apportion(int(total), list(real_counts) if flex else cap.tolist())
    return out


def solve_counts(
    totals: Sequence[int],
    targets: Sequence[int],
    caps: np.ndarray,
    flexible: Sequence[bool],
    source_names: Sequence[str] = SOURCES,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """An integer matrix with the given row sums and column sums under caps.

    `caps[s, c]` is how many examples of class c source s can give (a large
    number for sources that make as many as asked, such as a conditional
    generator). Preferred allocation: a source of fixed examples (real data,
    a dataset directory; `flexible` false) gives each class in proportion to
    what it holds; flexible sources then fill what each class still lacks,
    which is how generation rebalances rare classes. A max-flow pass then
    makes the sums exact, moving examples between classes only where the
    preference cannot be met.

    Raises:
        ConfigError: when no allocation meets the totals (names the class
            that cannot be filled).
    """
    totals = np.asarray(totals, np.int64)
    targets = np.asarray(targets, np.int64)
    caps = np.asarray(caps, np.int64)
    n_src, n_cls = caps.shape
    names = list(class_names or [str(i) for i in range(n_cls)])
    if totals.sum() != targets.sum():
        raise ConfigError(
            f"source totals sum to {totals.sum()} but class totals to {targets.sum()}"
        )
    for s in range(n_src):
        if totals[s] > caps[s].sum():
            raise ConfigError(
                f"{source_names[s]}: asks for {totals[s]} examples but the source has only "
                f"{caps[s].sum()}; lower its ratio or count"
            )
    flow = np.zeros((n_src, n_cls), np.int64)
    room = targets.copy()
    order = [s for s in range(n_src) if not flexible[s]] + [s for s in range(n_src) if flexible[s]]
    for s in order:
        weights = caps[s] if not flexible[s] else room * (caps[s] > 0)
        if totals[s] == 0 or weights.sum() == 0:
            continue
        want = apportion(int(min(totals[s], weights.sum())), weights.tolist())
        want = np.minimum(np.minimum(want, caps[s]), room)
        flow[s] = want
        room -= want
    _complete_flow(flow, totals, targets, caps)
    if not (np.array_equal(flow.sum(1), totals) and np.array_equal(flow.sum(0), targets)):
        reach = np.minimum(caps, totals[:, None]).sum(0)
        short = [c for c in range(n_cls) if reach[c] < targets[c]]
        c = short[0] if short else int(np.argmax(targets - flow.sum(0)))
        if short:
            why = f"the sources can give at most {reach[c]}"
        else:
            why = f"with these per-source totals it gets at most {flow[:, c].sum()}"
        raise ConfigError(
            f"--class-target: class {names[c]!r} needs {targets[c]} examples but {why}; "
            "add a conditional generator (--gen MODEL.keras), lower the real ratio or size, "
            "or change --class-target (match: the real class distribution; pool: each source's "
            "classes as it holds them)"
        )
    return flow


def _complete_flow(flow, totals, targets, caps) -> None:
    """Edmonds-Karp augmenting paths from the partial allocation `flow` (in place).

    Network: origin -> source s (capacity totals[s]) -> class c (caps[s, c])
    -> sink (targets[c]). Starting from any feasible partial flow, augmenting
    paths (which may undo parts of it through reverse edges) reach the
    maximum flow, so a full allocation is found whenever one exists.
    """
    n_src, n_cls = flow.shape
    while True:
        row_left = totals - flow.sum(1)
        col_left = targets - flow.sum(0)
        # BFS over nodes ("s", i) and ("c", j), starting at sources with room.
        parent: dict = {}
        queue = deque()
        for s in range(n_src):
            if row_left[s] > 0:
                parent[("s", s)] = None
                queue.append(("s", s))
        end = None
        while queue and end is None:
            kind, i = queue.popleft()
            if kind == "s":
                for c in np.flatnonzero(caps[i] - flow[i] > 0):
                    node = ("c", int(c))
                    if node not in parent:
                        parent[node] = (kind, i)
                        if col_left[c] > 0:
                            end = node
                            break
                        queue.append(node)
            else:
                for s in np.flatnonzero(flow[:, i] > 0):
                    node = ("s", int(s))
                    if node not in parent:
                        parent[node] = (kind, i)
                        queue.append(node)
        if end is None:
            return
        path = []
        node = end
        while parent[node] is not None:
            path.append((parent[node], node))
            node = parent[node]
        start = node[1]
        amount = min(row_left[start], col_left[end[1]])
        for (ka, a), (_, b) in path:
            if ka == "s":
                amount = min(amount, caps[a, b] - flow[a, b])
            else:
                amount = min(amount, flow[b, a])
        for (ka, a), (_, b) in path:
            if ka == "s":
                flow[a, b] += amount
            else:
                flow[b, a] -= amount
