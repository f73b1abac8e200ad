"""Fusion writer overhead and memory: building D' vs the generator's own sampling time.

Contenders, timed in this process after a warm-up, interleaved A, B, A, B:

- A (baseline): load the generator and draw N images with
  `tfsynth.models.sampling.generate_batches` (the generator's own predict
  time for the same images and labels), discarding them.
- B: `tfsynth.fusion.build_fused` writing the same N generated images as D'
  (sharded TFRecord with provenance, checksums, manifest).

writer_overhead = median over repetitions of (B / A - 1) in wall time; target
<= 0.20. writer_overhead_cpu is the same with process CPU time (all threads),
which other jobs on a shared machine disturb less.
peak_rss_mb is B's peak resident memory at N, run alone in a fresh process,
and again at N / 4 to show that it does not grow with the size of D';
target < 1500 MB.

The generator is an untrained 28x28 conditional GAN at the default width:
the weights do not change the cost of sampling.

Usage:
    python bench/fusion_throughput.py [--quick]   (quick: N = 4096, 3 reps)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, machine_info, untrained_cgan  # noqa: E402

RESULT = ROOT / "bench" / "results" / "fusion_throughput.json"
BATCH = 256
SEED = 0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N = 4096, 3 repetitions (~1 minute)")
    p.add_argument("--n", type=int, help="examples of D' (default 200000; quick 4096)")
    p.add_argument("--reps", type=int, help="repetitions (default 2; quick 3)")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        n, model_path, out = args.worker
        seconds, cpu = time_fuse(int(n), model_path, out)
        print(
            json.dumps(
                {"n": int(n), "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": _peak_rss_mb()}
            )
        )
        return
    n = args.n or (4096 if args.quick else 200_000)
    reps = args.reps or (3 if args.quick else 2)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        model_path = untrained_cgan(tmp)
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
        quarter = _rss_run(max(n // 4, 256), model_path)
        full = _rss_run(n, model_path)
    ratios = [f / b for b, f in zip(base, fuse)]
    cpu_ratios = [f / b for b, f in zip(base_cpu, fuse_cpu)]
    result = {
        "n": n,
        "image_shape": [28, 28, 1],
        "batch_size": BATCH,
        "reps": reps,
        "quick": bool(args.quick),
        "baseline_seconds": [round(x, 3) for x in base],
        "fuse_seconds": [round(x, 3) for x in fuse],
        "ratios": [round(r, 4) for r in ratios],
        "writer_overhead": round(statistics.median(ratios) - 1.0, 4),
        # Process CPU time (all threads): less sensitive to other jobs on a
        # shared machine than wall time.
        "baseline_cpu_seconds": [round(x, 2) for x in base_cpu],
        "fuse_cpu_seconds": [round(x, 2) for x in fuse_cpu],
        "writer_overhead_cpu": round(statistics.median(cpu_ratios) - 1.0, 4),
        "peak_rss_mb": round(full["peak_rss_mb"], 1),
        "peak_rss_mb_at_quarter_size": round(quarter["peak_rss_mb"], 1),
        "quarter_size": quarter["n"],
        "images_per_second_fuse": round(n / statistics.median(fuse), 1),
        "targets": {"writer_overhead": "<= 0.20", "peak_rss_mb": "< 1500, flat in n"},
        "command": "python bench/fusion_throughput.py " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "machine": machine_info(),
    }
    print()
    print(f"{'n':>8} {'generate s':>11} {'fuse s':>8} {'overhead':>9} {'peak RSS MB':>12} "
          f"{'RSS at n/4':>11}")  # fmt: skip
    print(f"{n:8d} {statistics.median(base):11.2f} {statistics.median(fuse):8.2f} "
          f"{result['writer_overhead']:9.3f} {result['peak_rss_mb']:12.0f} "
          f"{result['peak_rss_mb_at_quarter_size']:11.0f}")  # fmt: skip
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
