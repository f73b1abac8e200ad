"""mixed_bfloat16 vs float32 training of the cgan: images/s and quality, per seed.

Each contender is `tfsynth train --model cgan` with the quick preset's
network (width 32, latent 64, batch 64) on mnist-10k[:7000], in a fresh
process, interleaved per seed (float32, bf16, float32, bf16, ...). Its
images/s is the summary's (fit only). Quality is scored here on
mnist-10k[7000:8000], which no contender trained on: FID on the domain
classifier's features and label agreement, with fixed noise and the
validation labels (`tfsynth.validation.SampleScorer`, as `--val` does).
The question is whether bf16's spread of quality overlaps float32's.

    python bench/bf16_quality.py [--steps 2500] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "bf16_quality.json"
TRAIN, VAL = "mnist-10k[:7000]", "mnist-10k[7000:8000]"
PRECISIONS = ("float32", "mixed_bfloat16")


def train_once(precision: str, seed: int, steps: int, out: Path) -> dict:
    cmd = ["tfsynth", "train", "--model", "cgan", "--data", TRAIN, "--steps", str(steps),
           "--width", "32", "--latent-dim", "64", "--batch-size", "64", "--seed", str(seed),
           "--precision", precision, "--quiet", "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    s = json.loads((out / "summary.json").read_text())
    return {"images_per_second": s["images_per_second"], "steps": s["steps"], "run": str(out)}


def scores(runs: list[dict]) -> None:
    """Adds fid and label_agreement on VAL to each run (in place)."""
    import numpy as np

    from tfsynth.data import load_dataset
    from tfsynth.data.pipeline import to_uint8
    from tfsynth.evaluation.features import domain_classifier
    from tfsynth.models import load_generator
    from tfsynth.models.sampling import noise_for
    from tfsynth.validation import SampleScorer

    train, val = load_dataset(TRAIN), load_dataset(VAL)
    classifier, _ = domain_classifier(train, seed=0)
    scorer = SampleScorer(classifier, val.images)
    labels = np.asarray(val.labels)
    for r in runs:
        model = load_generator(r["run"])
        noise = noise_for(7_919, np.arange(len(labels)), model.latent_dim)
        images = np.concatenate([
            to_uint8(model.generate(noise[i : i + 256], labels[i : i + 256])).numpy()
            for i in range(0, len(labels), 256)
        ])  # fmt: skip
        r.update({k: round(v, 4) for k, v in scorer(images, labels).items()})


def _stats(runs: list[dict], key: str) -> dict:
    vals = [r[key] for r in runs]
    return {"mean": round(statistics.mean(vals), 4), "std": round(statistics.stdev(vals), 4)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args(argv)
    start = machine_info()
    runs = {k: [] for k in PRECISIONS}
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.seeds):
            for prec in PRECISIONS:
                runs[prec].append({"seed": seed, **train_once(prec, seed, args.steps,
                                                              Path(work) / f"{prec}-{seed}")})  # fmt: skip
                print(f"seed {seed} {prec:<15} {runs[prec][-1]['images_per_second']:8.1f} img/s",
                      flush=True)  # fmt: skip
        scores([r for v in runs.values() for r in v])
    speed = [b["images_per_second"] / a["images_per_second"]
             for a, b in zip(runs["float32"], runs["mixed_bfloat16"])]  # fmt: skip
    result = {
        "benchmark": "bf16_quality",
        "command": "python bench/" + Path(__file__).name + " " + " ".join(argv or sys.argv[1:]),
        "train": TRAIN, "val": VAL, "steps": args.steps, "seeds": args.seeds,
        "runs": {k: [{x: r[x] for x in r if x != "run"} for r in v] for k, v in runs.items()},
        "images_per_second_ratio_bf16_over_fp32": {
            "per_seed": [round(x, 3) for x in speed], "median": round(statistics.median(speed), 3)},
        "quality": {k: {m: _stats(v, m) for m in ("fid", "label_agreement")}
                    for k, v in runs.items()},
        "machine": start,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }  # fmt: skip
    print(f"{'precision':<16}{'img/s':>9}{'FID':>16}{'agreement':>18}")
    for k, q in result["quality"].items():
        ips = statistics.median(r["images_per_second"] for r in runs[k])
        print(f"{k:<16}{ips:>9.1f}{q['fid']['mean']:>9.2f} ± {q['fid']['std']:<5.2f}"
              f"{q['label_agreement']['mean']:>10.3f} ± {q['label_agreement']['std']:.3f}")  # fmt: skip
    print(
        f"bf16 / float32 images/s, median of seeds: {result['images_per_second_ratio_bf16_over_fp32']['median']}"
    )
    from tfsynth.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
