"""Label agreement of a trained conditional model, judged by a classifier trained on real data.

Generates N samples with uniform labels (N / K per class) from RUN/model.keras,
labels them with `tfsynth.evaluation.classifier` trained on the real
training images, and reports how often the classifier agrees with the
requested label. Agreement alone rewards a generator that draws one
prototype per class, so diversity is reported next to it: the mean
per-class pixel standard deviation (images in [-1, 1]) of the generated
and of N real images, and improved precision/recall and density/coverage
(`tfsynth.evaluation.distribution`) on the classifier's features. Also
saves the per-class sample grid (one row per class).

    tfsynth train --data 'mnist-10k[:8000]' --model cgan --out RUN
    python bench/cgan_label_agreement.py --run RUN --grid docs/cgan_mnist_samples.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _env import machine_info  # noqa: E402

from tfsynth.data import load_dataset  # noqa: E402
from tfsynth.evaluation.classifier import (  # noqa: E402
    FEATURE_LAYER,
    accuracy,
    predict_labels,
    train_classifier,
)
from tfsynth.evaluation.distribution import density_coverage, precision_recall  # noqa: E402
from tfsynth.io import atomic_write_json  # noqa: E402
from tfsynth.models import load_generator, model_id  # noqa: E402
from tfsynth.models.sampling import generate_batches  # noqa: E402
from tfsynth.plotting import class_grid, save_figure  # noqa: E402


def within_class_std(images_uint8, labels) -> float:
    """Mean over classes of the per-pixel standard deviation, images in [-1, 1]."""
    x = images_uint8.astype(np.float32) / 127.5 - 1.0
    return float(np.mean([x[labels == k].std(axis=0).mean() for k in np.unique(labels)]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--run", required=True, help="training run directory (model.keras, summary.json)"
    )
    p.add_argument("--data", default="mnist-10k[:8000]", help="the real training data")
    p.add_argument(
        "--test", default="mnist-10k[8000:]", help="held-out real data (classifier check)"
    )
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5, help="classifier epochs")
    p.add_argument("--grid", default=None, help="save the per-class sample grid here")
    p.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "cgan_label_agreement.json")
    )
    args = p.parse_args(argv)

    model = load_generator(args.run)
    real, test = load_dataset(args.data), load_dataset(args.test)
    clf = train_classifier(real, epochs=args.epochs, seed=args.seed)
    real_acc = float(accuracy(clf, test))
    batches = list(generate_batches(model, args.n, seed=args.seed))
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    pred = predict_labels(clf, images)
    agree = float((pred == labels).mean())
    per_class = {
        (model.class_names or [str(k) for k in range(model.num_classes)])[k]: round(
            float((pred[labels == k] == k).mean()), 3
        )
        for k in range(model.num_classes)
    }
    import keras

    from tfsynth.data.pipeline import to_unit_range

    real_images, real_labels = real.numpy()
    pick = np.random.default_rng(args.seed).choice(len(real_images), args.n, replace=False)
    real_images, real_labels = real_images[pick], real_labels[pick]
    features = keras.Model(clf.inputs, clf.get_layer(FEATURE_LAYER).output)
    real_f = features.predict(to_unit_range(real_images).numpy(), verbose=0)
    fake_f = features.predict(to_unit_range(images).numpy(), verbose=0)
    precision, recall = precision_recall(real_f, fake_f)
    density, coverage = density_coverage(real_f, fake_f)
    diversity = {
        "within_class_pixel_std": round(within_class_std(images, labels), 4),
        "real_within_class_pixel_std": round(within_class_std(real_images, real_labels), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "density": round(density, 4),
        "coverage": round(coverage, 4),
        "features": "classifier 'features' layer; real = N random training images",
    }
    run_summary = json.loads((Path(args.run) / "summary.json").read_text())
    result = {
        "benchmark": "cgan_label_agreement",
        "machine": machine_info(),
        "run": str(args.run),
        "model_id": model_id(model),
        "model": run_summary.get("model"),
        "data": args.data,
        "samples": args.n,
        "label_agreement": round(agree, 4),
        "per_class_agreement": per_class,
        "diversity": diversity,
        "classifier_real_test_accuracy": round(real_acc, 4),
        "classifier": "tfsynth.evaluation.classifier (trained on --data)",
        "train_seconds": run_summary.get("train_seconds"),
        "images_per_second": run_summary.get("images_per_second"),
        "epochs": run_summary.get("epochs_completed"),
        "steps": run_summary.get("steps"),
    }
    if args.grid:
        order = np.argsort(labels, kind="stable")
        fig = class_grid(
            images[order],
            labels[order],
            model.class_names or [str(k) for k in range(model.num_classes)],
            per_class=10,
            title=f"cgan on {args.data}: label agreement {agree:.3f}",
        )
        save_figure(fig, args.grid)
        result["grid"] = args.grid
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
