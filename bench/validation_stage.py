"""Where the validation stage of `tfsynth run` spends its time (search + evaluate).

Reruns the run's own `search` and `evaluate` stages (`tfsynth.runner`) on a
copy of a finished run directory under cProfile, and splits each stage's
wall time into classifier training (`train_classifiers`), building the
candidate mixes (augmentation, generation + curation), prediction, the
distribution and privacy metrics, figures, and the rest:

    tfsynth run --out runs/quick          # the quick preset, about 10 minutes
    python bench/validation_stage.py --run runs/quick
    python bench/validation_stage.py --run runs/quick --plain   # no profiler: stage times only

cProfile slows Python-heavy code (such as a Python call per optimizer
step), so compare stage times between commits with `--plain`.
The stage times are comparable with the run's stages.json; the metric
values of the rerun are recorded next to the run's, so a change that makes
the stage faster can be checked against the seed spread.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "validation_stage.json"
# part -> the tfsynth functions whose cumulative time it is (outermost calls only).
PARTS = {
    "classifier training": ["classifier.py:train_classifiers", "classifier.py:train_classifier"],
    "mix: augmentation": ["materialize.py:augmented_blocks"],
    "mix: generation + curation": ["curation.py:batches"],
    "prediction": ["classifier.py:predict_proba"],
    "distribution metrics": ["distribution.py:distribution_metrics"],
    "privacy metrics": ["evaluate.py:_privacy"],
    "figures": ["plotting.py:save_figure", "plotting.py:image_grid", "plotting.py:class_grid"],
}
METRICS = ("fid", "kid", "precision", "recall", "tstr_accuracy", "trtr_accuracy",
           "fused_accuracy", "d_test_accuracy", "dprime_test_accuracy")  # fmt: skip


def _matches(key, name: str) -> bool:
    path, _, func = key
    file, _, want = name.partition(":")
    return path.endswith("/" + file) and (not want or func == want)


def _cumulative(stats: pstats.Stats, names: list[str]) -> float:
    """Cumulative seconds of `names`, less what they spent when called from inside curation
    or from another of `names` (so each call is counted once, at its outermost name)."""
    total = 0.0
    for key, (_, _, _, cum, callers) in stats.stats.items():
        if any(_matches(key, n) for n in names):
            inner = [n for n in names if n != f"{Path(key[0]).name}:{key[2]}"]
            if not _matches(key, "curation.py"):
                inner.append("curation.py")
            total += cum - sum(
                c[3] for k, c in callers.items() if any(_matches(k, n) for n in inner)
            )
    return total


def profile_stage(work, plain: bool = False) -> dict:
    """Wall seconds of `work()` and its split into PARTS (the rest is "other"; none if `plain`)."""
    if plain:
        t0 = time.perf_counter()
        work()
        return {"seconds": round(time.perf_counter() - t0, 2), "parts": {}}
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(work)
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    parts = {name: round(_cumulative(stats, names), 2) for name, names in PARTS.items()}
    parts["other"] = round(wall - sum(parts.values()), 2)
    return {"seconds": round(wall, 2), "parts": parts}


def main(argv=None) -> None:
    from tfsynth import runner
    from tfsynth.config import RunConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a finished `tfsynth run` directory")
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--plain", action="store_true", help="time the stages without cProfile")
    args = p.parse_args(argv)
    start = machine_info()
    before = json.loads((args.run / "summary.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        shutil.copytree(args.run, out)
        shutil.rmtree(out / "evaluation")  # the stage writes it anew
        config = RunConfig.from_json((out / "config.json").read_text())
        r = runner._Run(config, out, log=lambda s: None, verbose=0, saved_models=Path(tmp))
        models = config.train.models
        stages = {
            "search": profile_stage(lambda: runner._search(r, models), args.plain),
            "evaluate": profile_stage(lambda: runner._evaluate(r), args.plain),
        }
        after = json.loads((out / "evaluation" / "summary.json").read_text())
        search = json.loads((out / "search" / "search.json").read_text())
    rows = search["table"]
    after["d_test_accuracy"] = rows[0]["test_accuracy"]
    after["dprime_test_accuracy"] = rows[search["chosen"]]["test_accuracy"]
    _print(stages)
    record = {"benchmark": "validation_stage", "run": str(args.run), "machine": start,
              "profiled": not args.plain,
              "load_average_at_end": machine_info()["load_average"], "stages": stages,
              "total_seconds": round(sum(s["seconds"] for s in stages.values()), 2),
              "classifier_trainings": search["config"]["seeds"] * len(rows)
              + config.evaluate.seeds,
              "metrics_run": {k: before.get(k) for k in METRICS},
              "metrics_rerun": {k: after.get(k) for k in METRICS}}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"total {record['total_seconds']} s; wrote {args.out}")


def _print(stages: dict) -> None:
    names = list(PARTS) + ["other"] if all(st["parts"] for st in stages.values()) else []
    print(f"{'part':28}" + "".join(f"{s:>10}" for s in stages))
    for n in names:
        print(f"{n:28}" + "".join(f"{st['parts'][n]:10.1f}" for st in stages.values()))
    print(f"{'stage':28}" + "".join(f"{st['seconds']:10.1f}" for st in stages.values()))


if __name__ == "__main__":
    main()
