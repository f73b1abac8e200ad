"""The fixed classifier's training: Keras `fit` on tf.data vs tfsynth's compiled loop.

Same work in every contender: the fixed classifier, 880 optimizer steps of
batch 64 (8 epochs of the quick preset's 7,000 training images,
mnist-10k[:7000]), Adam on a cosine decay, under `reuse_compiled` (the
search's and the utility's path). Contenders, each in a fresh process per
round, interleaved after a warm-up:

- fit: `model.fit` on the tf.data pipeline with a seeded shuffle, one traced
  step per optimizer step (tfsynth's classifier before the loop);
- loop: `train_classifier` (one model per compiled loop);
- loop_pair: `train_classifiers` with two seeds side by side (time per model).

Each process trains twice (the first call traces) and reports the second
training's wall and CPU seconds per model and the validation accuracy
(mnist-10k[7000:8000]) of every model it trained.

    python bench/classifier_loop.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "classifier_loop.json"
STEPS = 880
CASES = ("fit", "loop", "loop_pair")


def _fit_baseline(train, seed: int):
    """The classifier trained with Keras fit on a tf.data pipeline (same recipe)."""
    import keras
    import tensorflow as tf

    from tfsynth.data.pipeline import make_pipeline
    from tfsynth.evaluation import classifier as C

    model = C.build_classifier(train.shape, train.num_classes, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, STEPS)),
        loss=keras.losses.CategoricalCrossentropy(),
    )
    cols = {"image": train.images, "label": C._targets(train)}  # noqa: SLF001
    ds = make_pipeline(tf.data.Dataset.from_tensor_slices(cols), batch_size=64, seed=seed,
                       cache=False, shuffle_buffer=len(train))  # fmt: skip
    model.fit(ds.repeat(), epochs=1, steps_per_epoch=STEPS, verbose=0)
    return [model]


def child(case: str) -> dict:
    """Runs one contender in this process (two trainings) and returns its record."""
    from tfsynth.data import load_dataset
    from tfsynth.evaluation import classifier as C

    train, val = load_dataset("mnist-10k[:7000]"), load_dataset("mnist-10k[7000:8000]")

    def once(seed: int):
        if case == "fit":
            return _fit_baseline(train, seed)
        seeds = [seed, seed + 1] if case == "loop_pair" else [seed]
        return C.train_classifiers(train, seeds=seeds, steps=STEPS)

    with C.reuse_compiled():
        models = once(0)
        accs = [C.accuracy(m, val) for m in models]
        t0, c0 = time.perf_counter(), time.process_time()
        models = once(2)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        accs += [C.accuracy(m, val) for m in models]
    n = len(models)
    return {"seconds_per_model": wall / n, "cpu_seconds_per_model": cpu / n, "val_accuracy": accs}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return
    start = machine_info()

    def run(case: str) -> dict:
        cmd = [sys.executable, __file__, "--child", case]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    run("loop")  # warm-up: file caches, imports
    runs = {c: [] for c in CASES}
    for r in range(args.rounds):
        for case in CASES:
            runs[case].append(run(case))
            print(f"round {r + 1} {case}: {runs[case][-1]}", flush=True)
    secs = {c: [x["seconds_per_model"] for x in v] for c, v in runs.items()}
    cpu = {c: [x["cpu_seconds_per_model"] for x in v] for c, v in runs.items()}
    speedup = {c: statistics.median(f / s for f, s in zip(secs["fit"], secs[c])) for c in CASES}
    cpu_ratio = {c: statistics.median(f / s for f, s in zip(cpu["fit"], cpu[c])) for c in CASES}
    print(
        f"\n{'case':10} {'s/model':>8} {'CPU s':>7} {'speedup':>8} {'CPU ratio':>10} {'val acc':>8}"
    )
    for c in CASES:
        acc = statistics.mean(a for x in runs[c] for a in x["val_accuracy"])
        print(
            f"{c:10} {statistics.median(secs[c]):8.2f} {statistics.median(cpu[c]):7.2f} "
            f"{speedup[c]:8.2f} {cpu_ratio[c]:10.2f} {acc:8.4f}"
        )
    record = {"benchmark": "classifier_loop", "steps": STEPS, "batch_size": 64,
              "machine": start, "load_average_at_end": machine_info()["load_average"],
              "runs": runs, "median_speedup_vs_fit": speedup,
              "median_cpu_ratio_vs_fit": cpu_ratio}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
