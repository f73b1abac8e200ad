"""Throughput of the `digits` augmentation policy in a tf.data training pipeline.

Contenders, on the bundled 28x28 mnist-10k with batch 256 and prefetch:

- identity: `ImageDataset.to_tf_dataset(256)` (cache, shuffle, batch,
  normalize to [-1, 1], prefetch) with no augmentation;
- policy: the same pipeline with `map_batch=build_policy("digits").map_batch`;
- per_image: the same operations applied one image at a time with PIL and
  NumPy/SciPy, as Augmentor-style tools do (rotate, translate, zoom and
  elastic distortion, each its own resampling), then batched.

After a warm-up the contenders run interleaved (identity, policy,
per-image, identity, ...) and the reported ratios are medians of the
per-round ratios, because this machine's speed swings by 2x.

    python bench/augment_throughput.py [--quick]

writes bench/results/augment_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

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


def images_per_second(make_iter, n: int) -> float:
    t = time.perf_counter()
    count = 0
    for x, _ in make_iter():
        count += len(x)
    seconds = time.perf_counter() - t
    assert count == n, (count, n)
    return n / seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, fewer per-image images")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "augment_throughput.json")
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    per_image_n = 1024 if args.quick else 4096

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tensorflow as tf

    import tfsynth
    from tfsynth.augment import build_policy
    from tfsynth.io import atomic_write_json

    ds = tfsynth.load_dataset("mnist-10k")
    images, labels = ds.numpy()
    policy = build_policy("digits", seed=0)
    identity = ds.to_tf_dataset(BATCH, seed=0)
    augmented = ds.to_tf_dataset(BATCH, seed=0, map_batch=policy.map_batch)
    contenders = {
        "identity": (lambda: identity, len(ds)),
        "policy": (lambda: augmented, len(ds)),
        "per_image": (lambda: per_image_pipeline(images[:per_image_n], labels, 0), per_image_n),
    }
    for make, n in contenders.values():  # warm-up: caches, traces, XLA compiles
        images_per_second(make, n)
    runs = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (make, n) in contenders.items():
            runs[name].append(images_per_second(make, n))
    vs_identity = [p / i for p, i in zip(runs["policy"], runs["identity"])]
    vs_per_image = [p / q for p, q in zip(runs["policy"], runs["per_image"])]
    result = {
        "benchmark": "augment_throughput",
        "policy": policy.spec,
        "data": "mnist-10k",
        "batch_size": BATCH,
        "rounds": rounds,
        "quick": args.quick,
        "images_per_second": {k: statistics.median(v) for k, v in runs.items()},
        "runs": runs,
        "ratio_vs_identity": statistics.median(vs_identity),
        "ratio_vs_per_image": statistics.median(vs_per_image),
        "targets": {"ratio_vs_identity": 0.5, "ratio_vs_per_image": 10},
        "per_image_examples": per_image_n,
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }
    print(f"{'pipeline':<12}{'images/s (median)':>20}")
    for name, v in runs.items():
        print(f"{name:<12}{statistics.median(v):>20,.0f}")
    print(f"ratio_vs_identity  {result['ratio_vs_identity']:.2f}  (target >= 0.5)")
    print(f"ratio_vs_per_image {result['ratio_vs_per_image']:.1f}  (target >= 10)")
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
