"""Images/s of `tfsynth train` on 500 vs 8,000 images: is per-epoch work amortized?

Per-epoch work (checkpoint, sample grid, summaries) costs the same on any
dataset, so 7-step epochs (500 images, batch 64) would pay it 18x more
often than 125-step ones. Training to a step budget sizes epochs to at
least `MIN_EPOCH_STEPS` steps; training by `--epochs` keeps 7-step epochs
but runs the grid and epoch-end checkpoint at most once per
`MIN_EPOCH_STEPS` steps (`tfsynth.training.EpochWork`). Contenders, each
`tfsynth train --model cgan` in a fresh process (the images/s of its
summary.json, which times `fit` only), interleaved after a warm-up:

- big: mnist-10k[:8000], --steps STEPS
- small_steps: mnist-10k[:500], --steps STEPS
- small_epochs: mnist-10k[:500], --epochs (STEPS // 7): 7-step epochs

Each run also records the CPU seconds of its whole process (getrusage of
the child, setup included): equal CPU per step means equal work per image,
even when the wall-clock rate is bent by the machine's scheduling.

    python bench/small_data_rate.py [--steps 1400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "small_data_rate.json"


def contenders(steps: int) -> dict[str, list[str]]:
    return {
        "big": ["--data", "mnist-10k[:8000]", "--steps", str(steps)],
        "small_steps": ["--data", "mnist-10k[:500]", "--steps", str(steps)],
        "small_epochs": ["--data", "mnist-10k[:500]", "--epochs", str(steps // 7)],
    }


def once(args: list[str], work: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=work))
    cmd = ["tfsynth", "train", "--model", "cgan", "--width", "32", "--batch-size", "64",
           "--quiet", "--out", str(out / "run"), *args]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    s = json.loads((out / "run" / "summary.json").read_text())
    return {"images_per_second": s["images_per_second"], "steps": s["steps"],
            "steps_per_epoch": s["config.steps_per_epoch"],
            "process_cpu_seconds": round(cpu, 2)}  # fmt: skip


def cpu_per_image_ratios(runs: dict) -> dict[str, float]:
    """Median over rounds of big's process CPU per step over each case's (1.0: same CPU per image).

    Per step, because big's run rounds the budget up to whole epochs.
    """
    per_step = {n: [x["process_cpu_seconds"] / x["steps"] for x in v] for n, v in runs.items()}
    return {
        n: statistics.median(b / a for a, b in zip(v, per_step["big"])) for n, v in per_step.items()
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1400)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args(argv)
    cases = contenders(args.steps)
    start = machine_info()
    with tempfile.TemporaryDirectory() as work:
        once(cases["small_steps"][:3] + ["100"], Path(work))  # warm-up: caches, imports
        runs = {name: [] for name in cases}
        for r in range(args.rounds):
            for name, case in cases.items():
                runs[name].append(once(case, Path(work)))
                print(f"round {r + 1} {name}: {runs[name][-1]}", flush=True)
    rate = {n: [x["images_per_second"] for x in v] for n, v in runs.items()}
    ratios = {n: statistics.median(a / b for a, b in zip(rate[n], rate["big"])) for n in rate}
    cpu_ratios = cpu_per_image_ratios(runs)
    print(
        f"\n{'case':14} {'steps/epoch':>11} {'median img/s':>13} {'vs big':>7} {'CPU vs big':>11}"
    )
    for n in cases:
        spe = runs[n][0]["steps_per_epoch"]
        print(
            f"{n:14} {spe:>11} {statistics.median(rate[n]):13.0f} {ratios[n]:7.2f} "
            f"{cpu_ratios[n]:11.2f}"
        )
    record = {"benchmark": "small_data_rate", "steps": args.steps, "machine": start,
              "load_average_at_end": machine_info()["load_average"], "runs": runs,
              "median_ratio_vs_big": ratios,
              "median_cpu_ratio_vs_big": cpu_ratios}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
