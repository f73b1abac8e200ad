"""Throughput of the `digits` augmentation policy in a tf.data training pipeline.

Contenders, on the bundled 28x28 mnist-10k with batch 256 and prefetch:

- identity: `ImageDataset.to_tf_dataset(256, repeat=True)` (cache,
  shuffle, batch, normalize to [-1, 1], prefetch) with no augmentation;
- policy: the same pipeline with `augment=build_policy("digits")`: the
  policy runs on each uint8 batch and writes [-1, 1] floats, in place of
  the normalize step;
- per_image: the same operations applied one image at a time with PIL and
  NumPy/SciPy, as Augmentor-style tools do (rotate, translate, zoom and
  elastic distortion, each its own resampling), then batched.

Throughput is the steady state of a stream, the way tfsynth's trainer
reads data (one iterator over `dataset.repeat()`, see
`tfsynth.training`): each measurement opens a fresh iterator, discards
WARMUP batches (iterator setup, buffer fill), times the next batches and
closes the iterator, so no other pipeline runs in the background. The
one-off setup (iterator creation to first batch) is reported on its own,
and so is a per-epoch figure in which every 40-batch epoch pays it (what a
`for x in dataset` loop per epoch costs).

After a warm-up the contenders run interleaved (identity, policy,
per-image, identity, ...) and the reported ratios are medians of the
per-round ratios, because this machine's speed swings by 2x.

    python bench/augment_throughput.py [--quick]

writes bench/results/augment_throughput.json.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _env import machine_info  # noqa: E402

BATCH = 256


def per_image_pipeline(images: np.ndarray, labels: np.ndarray, seed: int):
    """Augmentor-style: a Python loop over images, one PIL/SciPy call per op."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter, map_coordinates

    rng = np.random.default_rng(seed)
    h, w = images.shape[1:3]
    side = max(h, w)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for start in range(0, len(images), BATCH):
        out = np.empty((len(images[start : start + BATCH]), h, w, 1), np.float32)
        for j, img in enumerate(images[start : start + BATCH]):
            pil = Image.fromarray(img[..., 0])
            # rotate:10
            pil = pil.rotate(rng.uniform(-10, 10), resample=Image.BILINEAR, fillcolor=0)
            # translate:0.1
            dx, dy = rng.uniform(-0.1, 0.1, 2) * (w, h)
            pil = pil.transform(
                (w, h), Image.AFFINE, (1, 0, -dx, 0, 1, -dy), resample=Image.BILINEAR, fillcolor=0
            )
            # zoom:0.1, about the centre
            z = 1.0 + rng.uniform(-0.1, 0.1)
            cx, cy = (w - 1) / 2, (h - 1) / 2
            pil = pil.transform(
                (w, h),
                Image.AFFINE,
                (z, 0, cx * (1 - z), 0, z, cy * (1 - z)),
                resample=Image.BILINEAR,
                fillcolor=0,
            )
            # elastic:0.02 (Simard et al.: smoothed noise, RMS displacement 0.02 * side)
            arr = np.asarray(pil, np.float32)
            field = gaussian_filter(
                rng.uniform(-1, 1, (2, h, w)), sigma=(0, 0.12 * side, 0.12 * side)
            )
            field *= 0.02 * side / np.sqrt(np.mean(field**2) + 1e-12)
            arr = map_coordinates(arr, [yy + field[0], xx + field[1]], order=1, mode="constant")
            out[j, ..., 0] = arr / 127.5 - 1.0
        yield out, labels[start : start + BATCH]


WARMUP = 20  # batches discarded per measurement (setup and buffer fill)


def stream_rate(make_iter, batches: int, warmup: int = WARMUP) -> tuple[float, float]:
    """(images/s over `batches` after `warmup`, seconds from iter() to the first batch)."""
    t0 = time.perf_counter()
    it = iter(make_iter())
    next(it)
    setup = time.perf_counter() - t0
    for _ in range(warmup - 1):
        next(it)
    t = time.perf_counter()
    n = sum(len(next(it)[0]) for _ in range(batches))
    rate = n / (time.perf_counter() - t)
    del it  # stop its prefetch threads before the next contender runs
    gc.collect()
    return rate, setup


def epoch_rate(make_iter, n: int) -> float:
    """images/s of one epoch from a fresh iterator, setup included."""
    t = time.perf_counter()
    count = sum(len(x) for x, _ in make_iter())
    assert count == n, (count, n)
    return n / (time.perf_counter() - t)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, shorter streams")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=None,
        help="tf.config intra-op threads for the whole run (default: TensorFlow's)",
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "augment_throughput.json")
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    batches = 60 if args.quick else 160  # timed batches per stream measurement
    per_image_batches = 4 if args.quick else 12

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tensorflow as tf

    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)

    import tfsynth
    from tfsynth.augment import build_policy
    from tfsynth.io import atomic_write_json

    machine = machine_info()  # the load before the measurement
    ds = tfsynth.load_dataset("mnist-10k")
    images, labels = ds.numpy()
    policy = build_policy("digits", seed=0)

    def identity(repeat=True):
        return ds.to_tf_dataset(BATCH, seed=0, repeat=repeat)

    def augmented(repeat=True):
        return ds.to_tf_dataset(BATCH, seed=0, repeat=repeat, augment=policy)

    def per_image(repeat=True):
        # An endless stream of different images (a fresh RNG per pass).
        def stream():
            for p in range(10**9):
                yield from per_image_pipeline(images, labels, p)

        return stream()

    streams = {  # name: (make, timed batches, warm-up batches)
        "identity": (identity, batches, WARMUP),
        "policy": (augmented, batches, WARMUP),
        "per_image": (per_image, per_image_batches, 1),  # a Python loop: nothing to fill
    }
    epochs = {"identity": lambda: identity(False), "policy": lambda: augmented(False)}
    for make, k, warm in streams.values():  # warm-up: caches, traces, XLA compiles
        stream_rate(make, k, warm)
    for make in epochs.values():
        epoch_rate(make, len(ds))
    runs = {name: [] for name in streams}
    setup = {name: [] for name in streams}
    epoch_runs = {name: [] for name in epochs}
    for _ in range(rounds):
        for name, (make, k, warm) in streams.items():
            rate, first = stream_rate(make, k, warm)
            runs[name].append(rate)
            setup[name].append(first)
        for name, make in epochs.items():
            epoch_runs[name].append(epoch_rate(make, len(ds)))
    vs_identity = [p / i for p, i in zip(runs["policy"], runs["identity"])]
    vs_per_image = [p / q for p, q in zip(runs["policy"], runs["per_image"])]
    per_epoch = [p / i for p, i in zip(epoch_runs["policy"], epoch_runs["identity"])]
    result = {
        "benchmark": "augment_throughput",
        "machine": machine,
        "policy": policy.spec,
        "data": "mnist-10k",
        "batch_size": BATCH,
        "rounds": rounds,
        "quick": args.quick,
        "method": (
            f"steady-state stream: fresh iterator, {WARMUP} warm-up batches dropped, then "
            f"{batches} timed batches ({per_image_batches} for per_image); interleaved rounds"
        ),
        "images_per_second": {k: statistics.median(v) for k, v in runs.items()},
        "runs": runs,
        "ratio_vs_identity": statistics.median(vs_identity),
        "ratio_vs_per_image": statistics.median(vs_per_image),
        "targets": {"ratio_vs_identity": 0.5, "ratio_vs_per_image": 10},
        "setup_seconds": {k: statistics.median(v) for k, v in setup.items()},
        "per_epoch": {
            "note": "one 10,000-image epoch per fresh iterator, setup included",
            "images_per_second": {k: statistics.median(v) for k, v in epoch_runs.items()},
            "ratio_vs_identity": statistics.median(per_epoch),
        },
        "intra_op_threads": args.intra_op_threads or "tensorflow default",
        "tensorflow": tf.__version__,
    }
    print(f"{'pipeline':<12}{'images/s (median)':>20}{'setup ms':>10}")
    for name, v in runs.items():
        print(
            f"{name:<12}{statistics.median(v):>20,.0f}{1e3 * result['setup_seconds'][name]:>10.0f}"
        )
    print(f"ratio_vs_identity  {result['ratio_vs_identity']:.2f}  (target >= 0.5)")
    print(f"ratio_vs_per_image {result['ratio_vs_per_image']:.1f}  (target >= 10)")
    print(
        f"per-epoch (setup included): ratio_vs_identity {result['per_epoch']['ratio_vs_identity']:.2f}"
    )
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
