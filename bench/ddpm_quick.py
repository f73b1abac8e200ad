"""Sizing the ddpm presets: training steps/s and DDIM sampling cost at 28x28 on this CPU.

For each (width, batch) candidate, a conditional ddpm (10 classes,
tfsynth's `Diffusion` trainer and U-Net, float32, no XLA, as `tfsynth run`
trains it) is fit on mnist-10k images for a few timed epochs after a
warm-up; then the EMA network samples a 256-image batch with a few DDIM
steps (the curation batch). The quick preset's step budget is what fits
the issue's 15 minutes of training at the measured rate, minus the
validation passes.

    python bench/ddpm_quick.py [--candidates 16x32,24x32,32x32] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._env import machine_info  # noqa: E402


def _candidate(text: str) -> tuple[int, int]:
    w, b = text.lower().split("x")
    return int(w), int(b)


def measure(x, y, width: int, batch: int, steps: int, rounds: int, sample_steps: int) -> dict:
    """Median training steps/s over `rounds` fits of `steps` steps, and sampling s per step."""
    import tensorflow as tf

    from tfsynth.models import build_model
    from tfsynth.models.sampling import noise_for

    model = build_model("ddpm", x.shape[1:], 10, width=width, seed=0)
    model.compile(jit_compile=False)
    ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(batch, drop_remainder=True)
        .repeat()
        .prefetch(2)
    )
    model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)  # warm-up: tracing
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
        rates.append(steps / (time.perf_counter() - t))
    noise = noise_for(0, np.arange(256), model.latent_dim)
    labels = np.arange(256) % 10
    model.generate(noise, labels, steps=1)  # warm-up: tracing
    t = time.perf_counter()
    model.generate(noise, labels, steps=sample_steps).numpy()
    per_step = (time.perf_counter() - t) / sample_steps
    return {
        "width": width,
        "batch_size": batch,
        "params": model.network.count_params(),
        "train_steps_per_second": round(statistics.median(rates), 3),
        "train_steps_per_second_rounds": [round(r, 3) for r in rates],
        "train_images_per_second": round(statistics.median(rates) * batch, 1),
        "sample_seconds_per_ddim_step_256": round(per_step, 3),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--candidates", default="16x32,24x32,32x32", help="WIDTHxBATCH,...")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sample-steps", type=int, default=4)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "ddpm_quick.json"))
    args = p.parse_args(argv)
    info = machine_info()  # the commit and load when the run starts

    from tfsynth.data import load_dataset

    data = load_dataset("mnist-10k[:2000]")
    images, labels = data.numpy()
    x = images.astype("float32") / 127.5 - 1.0
    rows = []
    for cand in args.candidates.split(","):
        w, b = _candidate(cand)
        rows.append(measure(x, labels, w, b, args.steps, args.rounds, args.sample_steps))
        r = rows[-1]
        print(
            f"width {w:>3} batch {b:>3}: {r['train_steps_per_second']:.2f} steps/s "
            f"({r['train_images_per_second']:.0f} img/s), "
            f"{r['sample_seconds_per_ddim_step_256']:.2f} s per DDIM step of 256"
        )
    from tfsynth.io import atomic_write_json

    result = {
        "benchmark": "ddpm_quick",
        **info,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "image_shape": list(x.shape[1:]),
        "num_classes": 10,
        "precision": "float32",
        "jit_compile": False,
        "timed_steps_per_round": args.steps,
        "rounds": args.rounds,
        "candidates": rows,
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
