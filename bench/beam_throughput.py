"""D' on Apache Beam: images/s of the DirectRunner with 1 and 2 worker processes vs the local builder.

Contenders, each run in a fresh process, interleaved (local, beam-1,
beam-2, local, ...) after a warm-up round:

- local: `tfsynth.fusion.build_fused`;
- beam-1, beam-2: `tfsynth.beam.fuse_on_beam` with the DirectRunner in
  ``multi_processing`` mode and ``--direct_num_workers`` 1 or 2 (each
  worker a separate Python process that loads the generator once).

All build the same plan: N images from an untrained 28x28 conditional
GAN at the default width (the weights do not change the cost of
sampling), in `SHARDS` shards. images/s is N over the wall time of the
whole build (plan, worker start-up, shards, merge); ratio = beam / local
per round, median over rounds. Every run's D' is checked byte-identical
to the first local one (SHA-256 of the shards and manifest).

peak_rss_mb: the launcher's own peak RSS and the largest worker's
(`RUSAGE_CHILDREN`: the largest waited-for child of the fresh process).

Usage:
    python bench/beam_throughput.py [--quick]   (quick: N = 2048, 2 rounds)
"""

from __future__ import annotations

import argparse
import hashlib
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

RESULT = ROOT / "bench" / "results" / "beam_throughput.json"
SHARDS = 4
CASES = ("local", "beam-1", "beam-2")


def _config(n: int, model_path: str) -> dict:
    return dict(
        real="mnist-10k", gen=model_path, counts=f"gen={n}", num_shards=SHARDS, batch_size=256
    )


def run_case(case: str, n: int, model_path: str, out: str) -> dict:
    """One build in this (fresh) process; its wall time, digests and peak memory."""
    from tfsynth.beam import BeamConfig, fuse_on_beam
    from tfsynth.fusion import build_fused

    t = time.perf_counter()
    if case == "local":
        build_fused(_config(n, model_path), out=out)
    else:
        workers = int(case.split("-")[1])
        opts = f"--direct_num_workers={workers} --direct_running_mode=multi_processing"
        fuse_on_beam(_config(n, model_path), out=out, beam=BeamConfig(opts))
    seconds = time.perf_counter() - t
    digest = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(out).iterdir())
        if p.name != "summary.json"
    }
    return {
        "case": case,
        "seconds": seconds,
        "images_per_second": n / seconds,
        "launcher_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": (
            None
            if case == "local"
            else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ),
        "digest": hashlib.sha256(json.dumps(digest).encode()).hexdigest(),
    }


def _fresh(case: str, n: int, model_path: str, tmp: str) -> dict:
    out = str(Path(tmp) / f"{case}-{time.time_ns()}" / "dprime")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run(
        [sys.executable, __file__, "--case", case, str(n), model_path, out],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if r.returncode != 0:
        raise SystemExit(f"{case} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _rounds(n: int, reps: int, model_path: str, tmp: str) -> dict[str, list[dict]]:
    _fresh("beam-2", max(SHARDS, n // 8), model_path, tmp)  # warm-up: file caches, .pyc
    runs: dict[str, list[dict]] = {c: [] for c in CASES}
    for _ in range(reps):
        for case in CASES:  # interleaved
            runs[case].append(_fresh(case, n, model_path, tmp))
        row = "   ".join(f"{c} {runs[c][-1]['images_per_second']:7.0f} img/s" for c in CASES)
        print(f"  {row}", flush=True)
    return runs


def _summary(runs: dict[str, list[dict]], n: int, reps: int, quick: bool) -> dict:
    local = [r["images_per_second"] for r in runs["local"]]
    digests = {r["digest"] for rs in runs.values() for r in rs}
    result = {"n": n, "image_shape": [28, 28, 1], "num_shards": SHARDS, "reps": reps}
    result["quick"] = quick
    result["identical_bytes"] = len(digests) == 1
    for case, rs in runs.items():
        rate = [r["images_per_second"] for r in rs]
        result[case] = {
            "images_per_second": [round(x, 1) for x in rate],
            "median_images_per_second": round(statistics.median(rate), 1),
            "ratio_to_local": round(statistics.median([b / a for a, b in zip(local, rate)]), 3),
            "launcher_peak_rss_mb": round(max(r["launcher_peak_rss_mb"] for r in rs), 1),
            "worker_peak_rss_mb": max(round(r["worker_peak_rss_mb"] or 0, 1) for r in rs) or None,
        }
    result["command"] = "python bench/beam_throughput.py " + " ".join(sys.argv[1:])
    return {**result, **machine_info()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N = 2048, 2 rounds")
    p.add_argument("--n", type=int, help="images of D' (default 16384; quick 2048)")
    p.add_argument("--reps", type=int, help="rounds (default 3; quick 2)")
    p.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        case, n, model_path, out = args.case
        print(json.dumps(run_case(case, int(n), model_path, out)))
        return
    n = args.n or (2048 if args.quick else 16384)
    reps = args.reps or (2 if args.quick else 3)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        model_path = untrained_cgan(tmp)
        runs = _rounds(n, reps, model_path, tmp)
    result = _summary(runs, n, reps, bool(args.quick))
    print(f"\n{'case':>8} {'img/s':>8} {'vs local':>9} {'launcher MB':>12} {'worker MB':>10}")
    for case in CASES:
        r = result[case]
        print(f"{case:>8} {r['median_images_per_second']:8.0f} {r['ratio_to_local']:9.3f} "
              f"{r['launcher_peak_rss_mb']:12.0f} {r['worker_peak_rss_mb'] or 0:10.0f}")  # fmt: skip
    print(f"identical bytes: {result['identical_bytes']}")
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
