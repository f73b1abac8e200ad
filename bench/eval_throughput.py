"""Speed and memory of the distribution metrics (FID + KID + P/R + D/C).

Contenders, on 10k real vs 10k synthetic 128-d features (a 10-cluster
Gaussian mixture, like classifier features of 10 classes):

- tfsynth: `tfsynth.evaluation.distribution.distribution_metrics` (blocked
  exact k-NN, one synthetic x real pass for all four manifold metrics);
- reference: the usual way, as in the authors' code and common tools:
  FID with `scipy.linalg.sqrtm`, KID in NumPy (same estimator, same
  subsets), k-NN radii with scikit-learn `NearestNeighbors`, and the
  manifold tests on full `scipy.spatial.distance.cdist` matrices.

After a warm-up the two run interleaved (tfsynth, reference, tfsynth, ...)
and `ratio_vs_reference` is the median of the per-round time ratios
reference / tfsynth (> 1 means tfsynth is faster), because this machine's
speed swings by 2x. Both results are compared, to show they agree.

Then tfsynth alone runs on 50k vs 50k in a child process and its peak
resident memory is recorded (the reference's 50k x 50k float64 distance
matrix alone would be 20 GB).

    python bench/eval_throughput.py [--quick]

writes bench/results/eval_throughput.json. Needs scikit-learn
(``pip install -e .[bench]``), which tfsynth itself does not depend on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, fit_exponent, machine_info, vm_hwm_mb  # noqa: E402

DIM = 128
GROWTH_SIZES = (2_000, 5_000, 10_000, 20_000, 50_000)
KID_SUBSET_SIZE = 1000


def features(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """A 10-cluster Gaussian mixture in DIM dimensions (float32)."""
    rng = np.random.default_rng(1234)
    centers = rng.normal(size=(10, DIM)) * 3
    rng = np.random.default_rng(seed)
    x = centers[rng.integers(0, 10, n)] + rng.normal(size=(n, DIM)) * (1 + shift)
    return (x + shift).astype(np.float32)


def reference_metrics(
    real: np.ndarray, fake: np.ndarray, kid_subsets: int = 100, seed: int = 0
) -> dict[str, float]:
    """FID/KID/P/R/D/C the usual way: sqrtm, sklearn NearestNeighbors, full cdist."""
    import scipy.linalg
    from scipy.spatial.distance import cdist
    from sklearn.neighbors import NearestNeighbors

    real64, fake64 = real.astype(np.float64), fake.astype(np.float64)
    mu1, mu2 = real64.mean(0), fake64.mean(0)
    s1, s2 = np.cov(real64, rowvar=False), np.cov(fake64, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    fid = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

    rng = np.random.default_rng(seed)
    m = min(KID_SUBSET_SIZE, len(real), len(fake))
    vals = []
    for _ in range(kid_subsets):
        x = real64[rng.choice(len(real), m, replace=False)]
        y = fake64[rng.choice(len(fake), m, replace=False)]
        kxx, kyy = (x @ x.T / DIM + 1) ** 3, (y @ y.T / DIM + 1) ** 3
        kxy = (x @ y.T / DIM + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        vals.append(within - 2 * kxy.mean())

    def radii(x, k):
        d, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        return d[:, k]  # column 0 is the point itself

    r_real = NearestNeighbors(n_neighbors=6).fit(real64).kneighbors(real64)[0]
    r3, r5, f3 = r_real[:, 3], r_real[:, 5], radii(fake64, 3)
    d = cdist(real64, fake64)  # (N, M) float64: 800 MB at 10k x 10k
    return {
        "fid": fid,
        "kid": float(np.mean(vals)),
        "kid_std": float(np.std(vals)),
        "precision": float((d <= r3[:, None]).any(axis=0).mean()),
        "recall": float((d <= f3[None, :]).any(axis=1).mean()),
        "density": float((d < r5[:, None]).sum() / (5 * len(fake))),
        "coverage": float((d.min(axis=1) < r5).mean()),
    }


def ours(real, fake, kid_subsets: int = 100, seed: int = 0) -> dict[str, float]:
    from tfsynth.evaluation.distribution import distribution_metrics

    return distribution_metrics(
        real, fake, kid_subsets=kid_subsets, kid_subset_size=KID_SUBSET_SIZE, seed=seed
    )


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def child_peak_memory(n: int, kid_subsets: int) -> dict[str, float]:
    """Runs tfsynth's metrics on n vs n in a fresh process; returns time and peak RSS."""
    # VmHWM (peak RSS of this address space) rather than ru_maxrss: Linux
    # carries ru_maxrss over from the parent through fork + exec, so the child
    # would report the parent's peak.
    code = (
        "import sys, time, json; sys.path.insert(0, sys.argv[2]);"
        "from bench.eval_throughput import features, ours; from bench._env import vm_hwm_mb;"
        "import tfsynth.evaluation.distribution;"  # TensorFlow's import is not the metrics' memory
        "n = int(sys.argv[1]); real, fake = features(n, 1), features(n, 2, 0.1);"
        "base = vm_hwm_mb();"
        "t = time.perf_counter(); m = ours(real, fake, int(sys.argv[3]));"
        "t = time.perf_counter() - t;"
        "print(json.dumps({'seconds': t, 'peak_rss_mb': vm_hwm_mb(),"
        " 'rss_before_metrics_mb': base, 'fid': m['fid'], 'coverage': m['coverage']}))"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run(
        [sys.executable, "-c", code, str(n), str(ROOT), str(kid_subsets)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def growth(sizes, kid_subsets: int) -> dict:
    """Time and peak RSS of the metrics per size (n per side), each in a fresh process."""
    rows = []
    for n in sizes:
        m = child_peak_memory(n, kid_subsets)
        rows.append({"n": n, "seconds": round(m["seconds"], 3), "peak_rss_mb": round(m["peak_rss_mb"], 1),
                     "rss_before_metrics_mb": round(m["rss_before_metrics_mb"], 1)})  # fmt: skip
        print(
            f"  growth n={n:>6}: {m['seconds']:7.1f} s, peak RSS {m['peak_rss_mb']:6.0f} MB",
            flush=True,
        )
    return {
        "rows": rows,
        "time_exponent": round(
            fit_exponent([r["n"] for r in rows], [r["seconds"] for r in rows]), 3
        ),
        # The metrics' own memory: the peak over what TensorFlow's import left.
        "memory_exponent": round(
            fit_exponent(
                [r["n"] for r in rows],
                [max(r["peak_rss_mb"] - r["rss_before_metrics_mb"], 1.0) for r in rows],
            ),
            3,
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about a minute: 3k per side, 20 KID subsets, 2 rounds, memory at 5k",
    )
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only re-measure peak memory and update that entry of an existing --out JSON",
    )
    parser.add_argument("--n", type=int, default=None, help="samples per side (default 10k)")
    parser.add_argument("--memory-n", type=int, default=None, help="default 50k (10k with --quick)")
    parser.add_argument(
        "--growth-sizes",
        default=",".join(map(str, GROWTH_SIZES)),
        help="samples per side of the cost-growth sweep, comma-separated ('' to skip)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "eval_throughput.json"))
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 3)
    args.n = args.n or (3_000 if args.quick else 10_000)
    memory_n = args.memory_n or (5_000 if args.quick else 50_000)
    kid_subsets = 20 if args.quick else 100

    sys.path.insert(0, str(ROOT))
    try:
        import sklearn
    except ImportError:
        print("needs scikit-learn for the reference: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    from tfsynth.io import atomic_write_json

    if args.memory_only:
        result = json.loads(Path(args.out).read_text())
        memory = child_peak_memory(memory_n, kid_subsets)
        result["memory"] = {
            "n_real": memory_n,
            "n_synthetic": memory_n,
            **memory,
            "reference_distance_matrix_gb": memory_n * memory_n * 8 / 1e9,
        }
        atomic_write_json(args.out, result)
        print(
            f"{memory_n} vs {memory_n}: {memory['seconds']:.1f} s, peak RSS {memory['peak_rss_mb']:.0f} MB"
        )
        return 0
    machine = machine_info()  # the commit and load when the run starts
    real, fake = features(args.n, 1), features(args.n, 2, shift=0.1)
    # Warm-up: BLAS thread pools, page faults, sklearn imports.
    small_r, small_f = real[:1000], fake[:1000]
    ours(small_r, small_f, 2)
    reference_metrics(small_r, small_f, 2)
    runs: dict[str, list[float]] = {"tfsynth": [], "reference": []}
    results = {}
    for _ in range(rounds):
        t, results["tfsynth"] = timed(ours, real, fake, kid_subsets)
        runs["tfsynth"].append(t)
        t, results["reference"] = timed(reference_metrics, real, fake, kid_subsets)
        runs["reference"].append(t)
    ratios = [r / o for o, r in zip(runs["tfsynth"], runs["reference"])]
    keys = ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage")
    diff = {
        k: abs(results["tfsynth"][k] - results["reference"][k])
        / max(abs(results["reference"][k]), 1e-12)
        for k in keys
    }
    sizes = [int(x) for x in args.growth_sizes.split(",") if x.strip()]
    grown = growth(sizes, kid_subsets) if sizes else None
    at_n = [r for r in (grown or {}).get("rows", []) if r["n"] == memory_n]
    memory = dict(at_n[0]) if at_n else child_peak_memory(memory_n, kid_subsets)
    result = {
        "benchmark": "eval_throughput",
        "metrics": "FID + KID + precision/recall (k=3) + density/coverage (k=5)",
        "n_real": args.n,
        "n_synthetic": args.n,
        "dim": DIM,
        "kid_subsets": kid_subsets,
        "kid_subset_size": KID_SUBSET_SIZE,
        "rounds": rounds,
        "quick": args.quick,
        "seconds": {k: statistics.median(v) for k, v in runs.items()},
        "runs": runs,
        "ratio_vs_reference": statistics.median(ratios),
        "relative_difference_vs_reference": diff,
        "values": {k: results["tfsynth"][k] for k in keys},
        "memory": {
            "n_real": memory_n,
            "n_synthetic": memory_n,
            **memory,
            "reference_distance_matrix_gb": memory_n * memory_n * 8 / 1e9,
        },
        "growth": grown,
        "command": "python bench/eval_throughput.py " + " ".join(sys.argv[1:]),
        "machine": machine,
        "load_average_at_save": machine_info()["load_average"],
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "python": platform.python_version(),
        "peak_rss_this_process_mb": vm_hwm_mb(),
    }
    print(f"{'contender':<12}{'seconds (median)':>18}")
    for name, v in runs.items():
        print(f"{name:<12}{statistics.median(v):>18.2f}")
    print(f"ratio_vs_reference {result['ratio_vs_reference']:.2f}  (reference time / tfsynth time)")
    print(f"max relative difference vs reference: {max(diff.values()):.2e}")
    print(
        f"{memory_n} vs {memory_n}: {memory['seconds']:.1f} s, peak RSS {memory['peak_rss_mb']:.0f} MB "
        f"(reference distance matrix alone: {result['memory']['reference_distance_matrix_gb']:.1f} GB)"
    )
    if result["growth"]:
        g = result["growth"]
        print(f"growth: time ~ n^{g['time_exponent']:.2f}, memory ~ n^{g['memory_exponent']:.2f}")
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
