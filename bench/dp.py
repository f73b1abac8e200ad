"""DP-SGD: its throughput cost, and what epsilon 10 and 1 do to a cgan on mnist-10k.

1. throughput: the quick cgan (width 16, batch 64, 28x28) trained normally
   vs with DP-SGD (epsilon 10, delta 1e-5, Poisson batches padded to the
   physical batch), interleaved A, B, A, B after a warm-up; each round
   times `--steps` train steps; the ratio is the median of the rounds'
   ratios. Also the two per-example gradient methods (vectorized_map vs
   jacobian) on the same model, interleaved the same way.
   The DP contender uses the default vectorized_map method.
2. mnist: cgan on mnist-10k[:8000] non-private, epsilon 10 and epsilon 1
   (delta 1e-5), `--train-steps` steps each (fewer than the quick preset's
   2,500: three models must fit ~25 CPU minutes); each generates 2,000
   images and is evaluated against mnist-10k[8000:] (FID, label agreement,
   TSTR with one seed, and the membership-inference audit: training rows
   as members, the holdout as non-members).

Prints a table and writes bench/results/dp.json.

    python bench/dp.py [--rounds 3] [--steps 200] [--train-steps 800] [--work /tmp/dp-bench]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "dp.json"
DATA, HOLDOUT = "mnist-10k[:8000]", "mnist-10k[8000:]"


def _trainer(data, dp_plan, width: int, method: str | None = None):
    import keras

    from tfsynth.models import build_model

    keras.utils.set_random_seed(0)
    gan = build_model("cgan", data.shape, data.num_classes, width=width, latent_dim=64, dp=dp_plan)
    gan.compile(jit_compile=False)
    if method is not None:
        from tfsynth.privacy import gan as private

        step = private.private_train_step
        gan.train_step = lambda batch: step(gan, batch, method=method)
    return gan


def _batches(gan, data, steps: int):
    from tfsynth.privacy.wiring import epoch_batches

    return epoch_batches(gan, data, 64, steps, seed=0, start_step=0, stop_step=steps).repeat()


def _rate(gan, data, steps: int) -> float:
    """Train steps per second over `steps` steps (after the caller's warm-up)."""
    ds = _batches(gan, data, steps)
    t = time.perf_counter()
    gan.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - t)


def _interleaved(contenders: dict, data, rounds: int, steps: int) -> dict:
    for gan in contenders.values():  # warm-up: tracing and the first batches
        _rate(gan, data, 10)
    rates = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, gan in contenders.items():
            rates[name].append(_rate(gan, data, steps))
    a, b = list(contenders)
    ratios = [rb / ra for ra, rb in zip(rates[a], rates[b])]
    return {
        "steps_per_second": rates,
        f"ratio_{b}_over_{a}": statistics.median(ratios),
        "ratios": ratios,
    }


def throughput(rounds: int, steps: int) -> dict:
    from tfsynth.data import load_dataset
    from tfsynth.privacy import DPConfig, plan_privacy

    data = load_dataset(DATA)
    plan = plan_privacy(
        DPConfig(epsilon=10.0), model="cgan", num_examples=len(data), batch_size=64, steps=2500
    )
    out = {"machine": machine_info(), "width": 16, "batch_size": 64, "steps": steps,
           "physical_batch": plan.physical_batch}  # fmt: skip
    normal, private = _trainer(data, None, 16), _trainer(data, plan, 16)
    out["normal_vs_dp"] = _interleaved({"normal": normal, "dp": private}, data, rounds, steps)
    # The jacobian method is an order of magnitude slower: fewer steps per round.
    jac = _trainer(data, plan, 16, method="jacobian")
    out["vectorized_map_vs_jacobian"] = _interleaved(
        {"vectorized_map": private, "jacobian": jac}, data, rounds, max(steps // 10, 20)
    )
    return out


def _one_model(name: str, epsilon, train_steps: int, work: Path) -> dict:
    from tfsynth.data import load_dataset
    from tfsynth.evaluation import evaluate
    from tfsynth.privacy import DPConfig
    from tfsynth.training import generate, train

    data = load_dataset(DATA)
    run, gen = work / name, work / f"{name}-gen"
    dp = DPConfig(epsilon=epsilon, delta=1e-5) if epsilon else None
    t = time.perf_counter()
    s = train(data, "cgan", steps=train_steps, out_dir=run, overwrite=True, verbose=0, dp=dp)
    train_seconds = time.perf_counter() - t
    generate(run, 2000, seed=1, out=gen, overwrite=True)
    e = evaluate(DATA, str(gen), HOLDOUT, seeds=1, low_data_sizes=None, max_samples=2000)
    keys = ("fid", "trts_accuracy", "tstr_accuracy", "trtr_accuracy", "mia_dcr_auc",
            "mia_dcr_tpr_at_1_fpr", "mia_density_auc", "mia_density_tpr_at_1_fpr",
            "memorization_rate", "privacy_guarantee")  # fmt: skip
    return {
        "model": name,
        "label_agreement": label_agreement(gen),
        "train_steps": s["steps"],
        "train_seconds": round(train_seconds, 1),
        "dp_epsilon": s.get("dp_epsilon"),
        "dp_noise_multiplier": s.get("dp_noise_multiplier"),
        **{k: e.get(k) for k in keys},
    }


def label_agreement(gen: Path) -> float:
    """The share of generated images the cached domain classifier (trained on DATA) gives their label."""
    from tfsynth.data import load_dataset
    from tfsynth.evaluation.classifier import predict_labels
    from tfsynth.evaluation.features import domain_classifier

    classifier, _ = domain_classifier(load_dataset(DATA), seed=0)
    images, labels = load_dataset(str(gen)).numpy()
    return float(np.mean(predict_labels(classifier, images) == labels))


def _fill_agreement(result: dict, work: Path) -> None:
    """Adds label_agreement to rows measured without it (from their generated sets)."""
    for row in result.get("mnist", []):
        if row.get("label_agreement") is None:
            row["label_agreement"] = label_agreement(work / f"{row['model']}-gen")


def audit_floor() -> dict:
    """The audit with real images that were never members standing in for synthetic data.

    On the contiguous split (train mnist-10k[:8000], holdout [8000:]) any
    AUC above 0.5 is the split's distribution shift, not leakage; on an
    i.i.d. split of mnist-10k it should be 0.5.
    """
    from tfsynth.data import load_dataset
    from tfsynth.evaluation.privacy import pixel_vectors
    from tfsynth.privacy.audit import membership_audit

    x = pixel_vectors(load_dataset("mnist-10k").images)
    out = {}
    for name, order in (
        ("contiguous", np.arange(len(x))),
        ("iid", np.random.default_rng(0).permutation(len(x))),
    ):
        members, syn, holdout = x[order[:4000]], x[order[4000:6000]], x[order[8000:]]
        audit = membership_audit(members, holdout, syn, seed=0)
        audit.pop("roc")
        out[name] = audit
    return out


def mnist(train_steps: int, work: Path, result: dict) -> list[dict]:
    """The three models, each written into bench/results/dp.json as soon as it is measured."""
    rows = result["mnist"] = []
    for name, epsilon in (("non-private", None), ("epsilon-10", 10.0), ("epsilon-1", 1.0)):
        rows.append(_one_model(name, epsilon, train_steps, work))
        print(rows[-1], flush=True)
        rows[-1]["machine"] = machine_info()
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    return rows


def _table(result: dict) -> None:
    tp = result.get("throughput")
    if tp:
        r = tp["normal_vs_dp"]
        print(f"DP / normal steps per second (median of ratios): {r['ratio_dp_over_normal']:.3f}")
        j = tp["vectorized_map_vs_jacobian"]
        print(f"jacobian / vectorized_map: {j['ratio_jacobian_over_vectorized_map']:.3f}")
    print(
        f"{'model':<12} {'eps':>6} {'FID':>7} {'agree':>6} {'TSTR':>6} {'AUC dcr':>8} {'AUC dens':>8}"
    )
    for row in result.get("mnist", []):
        cells = [_cell(row.get(k), spec) for k, spec in (("dp_epsilon", ".2f"), ("fid", ".2f"),
                 ("label_agreement", ".3f"), ("tstr_accuracy", ".3f"), ("mia_dcr_auc", ".3f"),
                 ("mia_density_auc", ".3f"))]  # fmt: skip
        print(f"{row['model']:<12} " + " ".join(f"{c:>8}" for c in cells))


def _cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--train-steps", type=int, default=800)
    ap.add_argument("--work", default="/tmp/dp-bench")
    ap.add_argument("--only", choices=["throughput", "mnist", "agreement", "floor"], default=None)
    args = ap.parse_args()
    result = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    result["command"] = " ".join(sys.argv)
    if args.only in (None, "throughput"):
        result["throughput"] = throughput(args.rounds, args.steps)
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    if args.only in (None, "mnist"):
        result["mnist_settings"] = {"data": DATA, "holdout": HOLDOUT, "train_steps": args.train_steps,
                                    "generated": 2000, "evaluate": "seeds=1, max_samples=2000"}  # fmt: skip
        mnist(args.train_steps, Path(args.work), result)
    if args.only in (None, "floor"):
        result["audit_floor"] = audit_floor()
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    if args.only == "agreement":
        _fill_agreement(result, Path(args.work))
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    _table(result)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
