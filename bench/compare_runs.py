"""Side by side: the generator metrics and stage times of finished `tfsynth run` directories.

Used for the ddpm-vs-cgan comparison on the quick preset: each run is a
plain `tfsynth run [--model ddpm] --out DIR` (same data, seed and preset),
so the table compares what a user gets from each model family. A run's
wall times depend on the machine's load while it ran: give it with
`--note DIR=TEXT` (e.g. the commit and load average), it is recorded.

Usage:
    python bench/compare_runs.py /tmp/q3 /tmp/qd --note /tmp/qd="load 4-8" \
        --out bench/results/ddpm_vs_cgan_quick.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import machine_info  # noqa: E402

COLUMNS = ("fid", "precision", "recall", "density", "coverage", "tstr_accuracy",
           "trtr_accuracy", "real_only_accuracy", "dprime_test_accuracy")  # fmt: skip
STAGES = ("train", "generate", "search", "fuse", "evaluate", "export")


def row(run: Path) -> dict:
    """The comparison row of one run directory (its summary.json)."""
    s = json.loads((run / "summary.json").read_text())
    model = s.get("config.train.model", "?")
    out = {"run": str(run), "model": model, **{k: s.get(k) for k in COLUMNS}}
    out["tstr_over_trtr"] = round(s["tstr_accuracy"] / s["trtr_accuracy"], 3)
    out["val_label_agreement"] = s.get(f"train.{model}.val_label_agreement")
    out["val_fid"] = s.get(f"train.{model}.val_fid")
    out["stage_seconds"] = {k: s.get(f"stage_seconds.{k}") for k in STAGES}
    out["wall_seconds"] = s.get("wall_seconds")
    out["chosen_mix"] = s.get("verdict")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--note", action="append", default=[], help="DIR=TEXT, recorded per run")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    notes = dict(n.split("=", 1) for n in args.note)
    rows = [{**row(r), "note": notes.get(str(r), "")} for r in args.runs]
    print(f"{'model':8} {'FID':>7} {'prec':>5} {'rec':>5} {'TSTR':>6} {'TRTR':>6} "
          f"{'ratio':>6} {'agree':>6} {'train s':>8} {'wall s':>7}")  # fmt: skip
    for r in rows:
        agree = r["val_label_agreement"]
        print(
            f"{r['model']:8} {r['fid']:7.2f} {r['precision']:5.3f} {r['recall']:5.3f} "
            f"{r['tstr_accuracy']:6.3f} {r['trtr_accuracy']:6.3f} {r['tstr_over_trtr']:6.3f} "
            f"{agree if agree is None else round(agree, 3)!s:>6} "
            f"{r['stage_seconds']['train']:8.1f} {r['wall_seconds']:7.1f}"
        )
    if args.out:
        args.out.write_text(json.dumps({"machine": machine_info(), "runs": rows}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
