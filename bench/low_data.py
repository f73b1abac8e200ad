"""The honest low-data curve: `tfsynth run` end to end at each real-data size N.

Protocol (what a user with N labelled images gets):

- A fixed held-out test set: the last 2,000 images of mnist-10k, which no
  run sees. The pool is the first 8,000.
- For each N and seed, a seeded random subset of the pool holds the user's
  data: N training images plus a validation split (20% of the user's data
  below N = 7,000, 1,000 images at N = 7,000). The generator, the curation
  classifier and the search of the mix see only that subset.
- `tfsynth run` with the quick preset (data.test_spec = the test set), so
  training, curation, the search and the verdict are what users run.
- Reported per N: D, D + augmentation, D + augmentation + generated (each
  the best mix of its family on validation) and the chosen D', as test
  accuracy mean and std over seeds; and what the generated samples add
  over real + augmented.

A second dataset of another size: ``--resize 16`` runs the same protocol on
mnist-10k resized to 16x16 (``tf.image.resize(..., method="area")``, saved
as an npz in the work directory).

Usage:
    python bench/low_data.py [--sizes 100,500,1000,7000] [--seeds 3] [--resize 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "low_data.json"
POOL, TEST = slice(0, 8000), slice(8000, 10000)


def _write_npz(path: Path, images, labels, class_names) -> str:
    np.savez(path, images=images, labels=labels, class_names=np.asarray(class_names))
    return f"npz:{path}"


def _user_data(images, labels, n: int, seed: int) -> tuple[np.ndarray, float]:
    """Row indices of the user's data (train + val) and its validation fraction."""
    val = 1000 if n >= 7000 else max(10, round(n / 4))  # val = 20% of the user's data
    idx = np.random.default_rng([seed, n]).permutation(len(labels))[: n + val]
    return np.sort(idx), val / (n + val)


def resized(data: str, side: int, work: Path) -> str:
    """`data` resized to side x side with area averaging, as an npz spec."""
    import tensorflow as tf

    from tfsynth.data import load_dataset

    ds = load_dataset(data)
    images, labels = ds.numpy()
    small = tf.image.resize(images.astype("float32"), (side, side), method="area").numpy()
    small = np.clip(np.round(small), 0, 255).astype(np.uint8)
    return _write_npz(work / f"{side}x{side}.npz", small, labels, ds.class_names)


def one_run(data: str, n: int, seed: int, work: Path, preset: str) -> dict:
    from tfsynth.config import preset as make_preset
    from tfsynth.data import load_dataset
    from tfsynth.runner import run

    ds = load_dataset(data)
    images, labels = ds.numpy()
    pool_x, pool_y = images[POOL], labels[POOL]
    test = _write_npz(work / "test.npz", images[TEST], labels[TEST], ds.class_names)
    idx, val_fraction = _user_data(pool_x, pool_y, n, seed)
    user = _write_npz(work / f"user_{n}_{seed}.npz", pool_x[idx], pool_y[idx], ds.class_names)
    cfg = make_preset(preset, data=user, seed=seed)
    cfg.data.test_spec = test
    cfg.data.val_fraction = val_fraction
    t0 = time.perf_counter()
    s = run(
        cfg, out=work / f"run_{n}_{seed}", saved_models=work / "sm", log=lambda _: None, verbose=0
    )
    keys = [
        k for k in s if k.startswith(("d_", "dprime_", "ladder.", "search_", "train.", "generate."))
    ]
    out = {k: s[k] for k in keys}
    out.update(
        n=n,
        seed=seed,
        num_train=s.get("num_train"),
        num_val=s.get("num_val"),
        num_test=s.get("num_test"),
        verdict=s.get("verdict"),
        fid=s.get("fid"),
        precision=s.get("precision"),
        tstr_accuracy=s.get("tstr_accuracy"),
        trtr_accuracy=s.get("trtr_accuracy"),
        seconds=round(time.perf_counter() - t0, 1),
    )
    return out


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for n in sorted({r["n"] for r in runs}):
        rs = [r for r in runs if r["n"] == n]
        row = {"n": n, "seeds": len(rs)}
        for name, key in (
            ("D", "d_test_accuracy"),
            ("D+aug", "ladder.D+aug.test_accuracy"),
            ("D+aug+gen", "ladder.D+aug+gen.test_accuracy"),
            ("D'", "dprime_test_accuracy"),
        ):
            row[name], row[f"{name}_std"] = _mean_std([r.get(key) for r in rs])
        gains = [
            r["ladder.D+aug+gen.test_accuracy"] - r["ladder.D+aug.test_accuracy"]
            for r in rs
            if "ladder.D+aug+gen.test_accuracy" in r and "ladder.D+aug.test_accuracy" in r
        ]
        row["gen_adds"], row["gen_adds_std"] = _mean_std(gains)
        row["dprime_minus_d_points"] = (
            None if row["D'"] is None else round(100 * (row["D'"] - row["D"]), 2)
        )
        row["chosen"] = [r.get("search_chosen_label") for r in rs]
        rows.append(row)
    return rows


def _print(rows):
    cols = ["D", "D+aug", "D+aug+gen", "D'", "gen_adds"]
    print(f"{'N':>6}" + "".join(f"{c:>17}" for c in cols))
    for r in rows:
        cells = ["n/a" if r[c] is None else f"{r[c]:.3f} ± {r[c + '_std']:.3f}" for c in cols]
        print(f"{r['n']:>6}" + "".join(f"{c:>17}" for c in cells))


def plot(rows: list[dict], path: Path, title: str) -> Path:
    """Test accuracy against N for D, D + aug, D + aug + gen and the chosen D'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, style in (("D", "o-"), ("D+aug", "s--"), ("D+aug+gen", "^:"), ("D'", "D-")):
        pts = [(r["n"], r[name], r[f"{name}_std"]) for r in rows if r[name] is not None]
        if pts:
            n, m, sd = zip(*pts)
            ax.errorbar(n, m, yerr=sd, fmt=style, capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks([r["n"] for r in rows], [str(r["n"]) for r in rows])
    ax.minorticks_off()
    ax.set_xlabel("real labelled training images N (the generator saw only these)")
    ax.set_ylabel("test accuracy (2,000 held-out images)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    seeds = sorted({r["seeds"] for r in rows})
    ax.set_title(
        f"{title}: end to end, mean ± std over {'/'.join(map(str, seeds))} seeds", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100,500,1000,7000")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data", default="mnist-10k", help="a 10,000-image dataset spec")
    p.add_argument("--preset", default="quick")
    p.add_argument("--resize", type=int, help="resize --data to SIDE x SIDE first (area)")
    p.add_argument("--out", default=str(RESULT))
    p.add_argument("--work", help="keep the run directories here (default: a temporary dir)")
    args = p.parse_args(argv)
    args.machine = machine_info()  # the code that runs, taken before the first run
    sizes = [int(s) for s in args.sizes.split(",")]
    out = Path(args.out)
    done = json.loads(out.read_text())["runs"] if out.is_file() else []
    work = Path(args.work or tempfile.mkdtemp(prefix="tfsynth-low-data-"))
    work.mkdir(parents=True, exist_ok=True)
    name = args.data if not args.resize else f"{args.data}@{args.resize}x{args.resize}"
    data = args.data if not args.resize else resized(args.data, args.resize, work)
    runs = [r for r in done if r.get("data", "mnist-10k") == name]
    for seed in range(args.seeds):
        for n in sizes:
            if any(r["n"] == n and r["seed"] == seed for r in runs):
                continue  # resumable: finished runs are kept in the JSON
            r = one_run(data, n, seed, work, args.preset)
            r["data"] = name
            r["commit"] = args.machine["commit"]  # resumed files mix commits: each run says its own
            runs.append(r)
            print(f"N={n} seed={seed}: D {r.get('d_test_accuracy'):.4f}  D' "
                  f"{r.get('dprime_test_accuracy'):.4f}  ({r['search_chosen_label']}; {r['seconds']} s)",
                  flush=True)  # fmt: skip
            _save(out, args, runs)
    rows = summarize(runs)
    _print(rows)
    _save(out, args, runs)
    plot(rows, out.with_suffix(".png"), name)
    return 0


def _save(out: Path, args, runs):
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "low_data",
        "protocol": __doc__.split("Usage:")[0].strip(),
        "data": runs[0]["data"] if runs else args.data,
        "preset": args.preset,
        "machine": args.machine,
        "load_average_at_save": machine_info()["load_average"],
        "summary": summarize(runs),
        "runs": runs,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
