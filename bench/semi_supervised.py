"""Semi-supervised on mnist-10k: 100 labelled + 6,900 unlabelled training images.

1. `tfsynth ssl` (SimCLR) on the 7,000 training images, labels unused
   (one encoder; its training never sees a label, so it serves every seed).
2. per seed: 100 random labelled rows of mnist-10k[:7000] (all classes
   present), the other 6,900 given without labels to `pseudo_label`
   (default settings); their true labels only score the result.
3. the project's utility classifier on the 100 labelled images (D) vs
   D + the kept pseudo-labelled images (D'), same step budget (the real
   set's), test accuracy on mnist-10k[8000:] (2,000 images no step sees).

Prints a table and writes bench/results/semi_supervised.json.

    python bench/semi_supervised.py [--seeds 3] [--ssl-epochs 20] [--work /tmp/ssb]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "semi_supervised.json"


def _ssl(work: Path, epochs: int) -> tuple[str, dict]:
    from tfsynth.data import load_dataset
    from tfsynth.selfsup import SSLConfig, train_ssl

    out = work / "ssl"
    cfg = SSLConfig(data="mnist-10k[:7000]", epochs=epochs, batch_size=128, width=16)
    summary_file = out / "summary.json"
    if summary_file.is_file():
        return str(out), json.loads(summary_file.read_text())
    data = load_dataset(cfg.data, unlabeled=True)
    s = train_ssl(cfg, out, data=data, log=print)
    return str(out), {k: v for k, v in s.items() if k != "history"}


def _one_seed(seed: int, ssl_dir: str, work: Path) -> dict:
    from tfsynth.data import ImageDataset, load_dataset
    from tfsynth.evaluation.classifier import accuracy, step_budget, train_classifier
    from tfsynth.selfsup import PseudoLabelConfig, pseudo_label

    train, test = load_dataset("mnist-10k[:7000]"), load_dataset("mnist-10k[8000:]")
    images, labels = train.numpy()
    order = np.random.default_rng(seed).permutation(len(images))
    lab_rows, unl_rows = np.sort(order[:100]), np.sort(order[100:])
    assert len(np.unique(labels[lab_rows])) == 10, "a class has no labelled image"
    labeled = ImageDataset(images[lab_rows], labels[lab_rows], name=f"labelled-{seed}")
    unlabeled = ImageDataset(images[unl_rows], labels[unl_rows], name=f"unlabelled-{seed}")
    t = time.perf_counter()
    cfg = PseudoLabelConfig(ssl=ssl_dir, seed=seed)
    s = pseudo_label(
        cfg, work / f"pseudo-{seed}", labeled=labeled, unlabeled=unlabeled, overwrite=True
    )
    pseudo = load_dataset(str(work / f"pseudo-{seed}"))
    fused = ImageDataset(
        np.concatenate([labeled.images, pseudo.images]),
        np.concatenate([labeled.labels, pseudo.labels]),
        name="D'",
    )
    steps = step_budget(len(labeled), epochs=8, batch_size=64, min_steps=300)
    acc_d = accuracy(train_classifier(labeled, steps=steps, seed=seed), test)
    acc_dp = accuracy(train_classifier(fused, steps=steps, seed=seed), test)
    return {
        "seed": seed,
        "kept_fraction": s["kept_fraction"],
        "pseudo_label_accuracy": s["pseudo_label_accuracy"],
        "accuracy_all_unlabelled": s["accuracy_all"],
        "num_kept": s["num_kept"],
        "kept_fraction_per_class": s["kept_fraction_per_class"],
        "classifier_steps": steps,
        "test_accuracy_D": acc_d,
        "test_accuracy_D_prime": acc_dp,
        "gain_points": 100 * (acc_dp - acc_d),
        "seconds": round(time.perf_counter() - t, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ssl-epochs", type=int, default=20)
    ap.add_argument("--work", default="/tmp/tfsynth-semi-supervised")
    ap.add_argument("--out", default=str(RESULT))
    args = ap.parse_args()
    machine = machine_info()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ssl_dir, ssl_summary = _ssl(work, args.ssl_epochs)
    runs = [_one_seed(s, ssl_dir, work) for s in range(args.seeds)]
    keys = ("kept_fraction", "pseudo_label_accuracy", "test_accuracy_D", "test_accuracy_D_prime")
    mean = {k: float(np.mean([r[k] for r in runs])) for k in (*keys, "gain_points")}
    std = {k: float(np.std([r[k] for r in runs])) for k in (*keys, "gain_points")}
    print(f"\nSSL: {ssl_summary['epochs']} epochs, {ssl_summary['seconds']:.0f} s, "
          f"{ssl_summary['images_per_second']:.0f} img/s")  # fmt: skip
    print("| seed | kept | pseudo acc (kept) | D (100) | D + pseudo | gain |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['seed']} | {r['kept_fraction']:.3f} | {r['pseudo_label_accuracy']:.4f} | "
              f"{r['test_accuracy_D']:.4f} | {r['test_accuracy_D_prime']:.4f} | {r['gain_points']:+.1f} |")  # fmt: skip
    print(f"| mean | {mean['kept_fraction']:.3f} | {mean['pseudo_label_accuracy']:.4f} | "
          f"{mean['test_accuracy_D']:.4f} | {mean['test_accuracy_D_prime']:.4f} | {mean['gain_points']:+.1f} |")  # fmt: skip
    result = {
        "benchmark": "semi_supervised",
        "setup": __doc__.split("\n\n")[1],
        "machine": machine,
        "load_average_at_save": machine_info()["load_average"],
        "ssl": ssl_summary,
        "runs": runs,
        "mean": mean,
        "std": std,
        "goals": {"pseudo_label_accuracy": 0.95, "kept_fraction": 0.7, "gain_points": 10},
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
