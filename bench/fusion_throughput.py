"""Fusion writer overhead and memory: building D' vs the generator's own sampling time.

Contenders, timed in this process after a warm-up, interleaved A, B, A, B:

- A (baseline): load the generator and draw N images with
  `tfsynth.models.sampling.generate_batches` (the generator's own predict
  time for the same images and labels), discarding them.
- B: `tfsynth.fusion.build_fused` writing the same N generated images as D'
  (sharded TFRecord with provenance, checksums, manifest).

writer_overhead = median over >= 3 interleaved repetitions of (B / A - 1) in
wall time; target <= 0.20. writer_overhead_cpu is the same with process CPU
time (all threads), which other jobs on a shared machine disturb less.

Memory and cost growth: B alone in a fresh process per size (default 50k,
200k and 1M images), its peak resident memory read from /proc (VmHWM: its
own address space's peak, not a parent's carried over as ru_maxrss is) and
its wall time; the fitted exponents of time and memory in n. Target: peak
RSS < 1500 MB and flat in n (1M within 10% of 50k).

The generator is an untrained 28x28 conditional GAN at the default width:
the weights do not change the cost of sampling.

Usage:
    python bench/fusion_throughput.py [--quick]   (quick: N = 4096, sizes 4k/16k)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, fit_exponent, machine_info, untrained_cgan, vm_hwm_mb  # noqa: E402

RESULT = ROOT / "bench" / "results" / "fusion_throughput.json"
BATCH = 256
SEED = 0
RSS_SIZES = (50_000, 200_000, 1_000_000)


def _config(n: int, model_path: str) -> dict:
    return dict(
        real="mnist-10k",
        gen=model_path,
        counts=f"gen={n}",
        class_target="match",
        seed=SEED,
        batch_size=BATCH,
        examples_per_shard=10_000,
    )


def time_fuse(n: int, model_path: str, out_dir: str) -> tuple[float, float]:
    """B: build D' of n generated images (loads the model itself)."""
    from tfsynth.fusion import build_fused

    t, c = time.perf_counter(), time.process_time()
    manifest = build_fused(_config(n, model_path), out=Path(out_dir) / f"dprime-{time.time_ns()}")
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    assert manifest["num_examples"] == n
    return seconds, cpu


def time_generate(n: int, model_path: str) -> tuple[float, float]:
    """A: load the generator and sample the same n images (same labels, same order)."""
    from tfsynth.fusion import FusionConfig
    from tfsynth.fusion.builder import Layout
    from tfsynth.models import load_generator
    from tfsynth.models.sampling import generate_batches

    labels = Layout(FusionConfig(**_config(n, model_path))).sources[0].seq
    t, c = time.perf_counter(), time.process_time()
    model = load_generator(model_path)
    count = 0
    for batch in generate_batches(model, n, labels=labels, seed=SEED, batch_size=BATCH):
        count += len(batch["label"])
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    assert count == n
    return seconds, cpu


def _rss_run(n: int, model_path: str) -> dict:
    """B in a fresh process, so that its peak RSS is its own."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        r = subprocess.run(
            [sys.executable, __file__, "--worker", str(n), model_path, out],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        if r.returncode != 0:
            raise SystemExit(f"worker failed:\n{r.stderr[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])


def overhead(n: int, reps: int, model_path: str, tmp: str) -> dict:
    """A and B interleaved `reps` times after a warm-up; medians of the ratios."""
    time_generate(512, model_path)  # warm-up: imports, tracing, file caches
    time_fuse(512, model_path, tmp)
    base, fuse, base_cpu, fuse_cpu = [], [], [], []
    for _ in range(reps):  # interleaved A, B, A, B, ...
        for times, cpus, run in (
            (base, base_cpu, lambda: time_generate(n, model_path)),
            (fuse, fuse_cpu, lambda: time_fuse(n, model_path, tmp)),
        ):
            wall, cpu = run()
            times.append(wall)
            cpus.append(cpu)
        print(f"  generate {base[-1]:8.2f} s ({base_cpu[-1]:7.1f} cpu-s)   "
              f"fuse {fuse[-1]:8.2f} s ({fuse_cpu[-1]:7.1f} cpu-s)   "
              f"ratio {fuse[-1] / base[-1]:.3f}", flush=True)  # fmt: skip
    ratios = [f / b for b, f in zip(base, fuse)]
    cpu_ratios = [f / b for b, f in zip(base_cpu, fuse_cpu)]
    return {
        "n": n,
        "reps": reps,
        "baseline_seconds": [round(x, 3) for x in base],
        "fuse_seconds": [round(x, 3) for x in fuse],
        "ratios": [round(r, 4) for r in ratios],
        "writer_overhead": round(statistics.median(ratios) - 1.0, 4),
        # Process CPU time (all threads): less sensitive to other jobs on a
        # shared machine than wall time.
        "baseline_cpu_seconds": [round(x, 2) for x in base_cpu],
        "fuse_cpu_seconds": [round(x, 2) for x in fuse_cpu],
        "writer_overhead_cpu": round(statistics.median(cpu_ratios) - 1.0, 4),
        "images_per_second_fuse": round(n / statistics.median(fuse), 1),
    }


def growth(sizes, model_path: str) -> dict:
    """B alone in a fresh process per size: wall time, CPU time and peak RSS."""
    rows = []
    for n in sizes:
        r = _rss_run(n, model_path)
        rows.append({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})
        print(f"  fresh process n={n:>8}: {r['seconds']:8.1f} s, peak RSS {r['peak_rss_mb']:6.0f} MB",
              flush=True)  # fmt: skip
    ns = [r["n"] for r in rows]
    rss = [r["peak_rss_mb"] for r in rows]
    return {
        "rows": rows,
        "time_exponent": round(fit_exponent(ns, [r["seconds"] for r in rows]), 3),
        "memory_exponent": round(fit_exponent(ns, rss), 3),
        "peak_rss_largest_over_smallest": round(rss[-1] / rss[0], 4),
    }


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N = 4096, 3 repetitions, sizes 4k and 16k")
    p.add_argument(
        "--n", type=int, help="examples of D' for the overhead (default 50000; quick 4096)"
    )
    p.add_argument("--reps", type=int, help="interleaved repetitions (default 3)")
    p.add_argument("--sizes", help="fresh-process sizes, comma-separated (default 50k,200k,1M)")
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> None:
    args = _args()
    if args.worker:
        n, model_path, out = args.worker
        seconds, cpu = time_fuse(int(n), model_path, out)
        print(json.dumps({"n": int(n), "seconds": seconds, "cpu_seconds": cpu,
                          "peak_rss_mb": vm_hwm_mb()}))  # fmt: skip
        return
    n = args.n or (4096 if args.quick else 50_000)
    reps = args.reps or 3
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else (
        [4096, 16384] if args.quick else list(RSS_SIZES))  # fmt: skip
    machine = machine_info()  # the commit and load when the run starts
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        model_path = untrained_cgan(tmp)
        result = {"image_shape": [28, 28, 1], "batch_size": BATCH, "quick": bool(args.quick),
                  **overhead(n, reps, model_path, tmp), "growth": growth(sizes, model_path)}  # fmt: skip
    g = result["growth"]
    result.update({
        "peak_rss_mb": max(r["peak_rss_mb"] for r in g["rows"]),
        "targets": {"writer_overhead": "<= 0.20",
                    "peak_rss_mb": "< 1500, flat in n (largest size within 10% of smallest)"},
        "command": "python bench/fusion_throughput.py " + " ".join(sys.argv[1:]),
        "machine": machine,
        "load_average_at_save": machine_info()["load_average"],
    })  # fmt: skip
    print()
    print(f"writer overhead {result['writer_overhead']:.3f} (wall, median of {reps}), "
          f"{result['writer_overhead_cpu']:.3f} (CPU)")  # fmt: skip
    print(f"{'n':>9} {'seconds':>9} {'peak RSS MB':>12}")
    for r in g["rows"]:
        print(f"{r['n']:9d} {r['seconds']:9.1f} {r['peak_rss_mb']:12.0f}")
    print(f"time ~ n^{g['time_exponent']:.2f}, peak RSS ~ n^{g['memory_exponent']:.3f}, "
          f"largest / smallest RSS {g['peak_rss_largest_over_smallest']:.3f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
