"""Downstream utility: does synthetic data train a classifier that works on real data?

Every number here trains the one fixed classifier recipe
(`tfsynth.evaluation.classifier.train_classifier`) and tests it, repeated
over several seeds (mean and standard deviation):

- TRTR: train on real, test on real (the held-out test split): the baseline.
- TSTR: train on synthetic only, test on real.
- TRTS: train on real, test on synthetic (are the synthetic labels right?);
  it reuses the TRTR models, so it costs no training.
- D vs D': the real training set against D' (real + synthetic, or an
  explicit fused dataset such as `tfsynth fuse` wrote), both tested on real.
- the low-data curve: real subsets of increasing size (100, 500, 1000, all),
  each trained with and without the synthetic data added.

Runs that the definitions make identical are trained once: the TRTR models
are the "real only, all" point of the curve, and D' = real + synthetic is
its "with synthetic, all" point.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfsynth.data.dataset import ImageDataset, check_compatible
from tfsynth.errors import ConfigError
from tfsynth.evaluation.classifier import (
    DEFAULT_EPOCHS,
    accuracy,
    reuse_compiled,
    step_budget,
    train_classifiers,
)

DEFAULT_LOW_DATA_SIZES = (100, 500, 1000)


def concat(parts: Sequence[ImageDataset], name: str) -> ImageDataset:
    """Stacks datasets with the same shape and classes (extra columns dropped)."""
    check_compatible(parts[0], *parts[1:])
    return ImageDataset(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        class_names=parts[0].class_names,
        name=name,
    )


def subset(dataset: ImageDataset, n: int, seed: int) -> ImageDataset:
    """A seeded random subset of `n` rows (all rows when n >= len)."""
    if n >= len(dataset):
        return dataset
    idx = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    images, labels = dataset.numpy()
    return ImageDataset(
        images[idx], labels[idx], class_names=dataset.class_names, name=f"{dataset.name}#{n}"
    )


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """Seeds 0..n-1 for an int n, or the given seeds as ints."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds: expected a positive number of seeds, got {seeds}")
        return list(range(seeds))
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("seeds: expected at least one seed")
    return seeds


def _stats(prefix: str, values: list[float]) -> dict[str, Any]:
    return {
        prefix: float(np.mean(values)),
        f"{prefix}_std": float(np.std(values)),
        f"{prefix}_runs": [float(v) for v in values],
    }


def utility_metrics(
    real: ImageDataset,
    synthetic: ImageDataset,
    test: ImageDataset,
    *,
    fused: ImageDataset | None = None,
    seeds: int | Sequence[int] = 3,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 64,
    width: int = 16,
    min_steps: int = 300,
    low_data_sizes: Sequence[int] | None = DEFAULT_LOW_DATA_SIZES,
    known: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Trains the fixed classifier on real, synthetic and D'; tests on real.

    Every training gets the real set's step budget (`step_budget`): equal compute.

    Args:
        real: the real training split (D).
        synthetic: the synthetic data (D_gen, or any labelled set to judge).
        test: held-out real data, never seen by the generator.
        fused: D'; defaults to real + synthetic.
        seeds: a number of seeds (0..n-1) or the seeds themselves.
        epochs, batch_size, width, min_steps: the classifier recipe
            (see `train_classifier`).
        low_data_sizes: real subset sizes for the low-data curve; the full
            real set is always the last point. None or () skips the curve.
        known: test accuracies per seed measured elsewhere with the same
            recipe (``trtr``, ``fused``: e.g. by the search of the mix);
            those models are not trained again (TRTS is then left out).

    Returns:
        A flat dict: ``trtr_accuracy``, ``tstr_accuracy``, ``trts_accuracy``,
        ``real_only_accuracy`` (D, = TRTR), ``fused_accuracy`` (D'), each
        with ``_std`` and ``_runs``; ``low_data.<n>.real`` and
        ``low_data.<n>.real+synthetic`` with ``_std``; counts and settings.
    """
    check_compatible(real, synthetic, test, fused)
    seeds = seed_list(seeds)
    known = dict(known or {})
    t0 = time.perf_counter()
    recipe = {"epochs": epochs, "batch_size": batch_size, "width": width, "min_steps": min_steps}
    budget = step_budget(len(real), epochs=epochs, batch_size=batch_size, min_steps=min_steps)

    def scores(data, *on: ImageDataset, steps: int = budget) -> list[list[float]]:
        """Per set in `on`: the accuracy of each seed's model, trained side by side on `data`."""
        models = train_classifiers(
            data, seeds=seeds, batch_size=batch_size, width=width, steps=steps
        )
        return [[accuracy(m, ds) for m in models] for ds in on]

    real_plus_syn = concat([real, synthetic], name="real+synthetic")
    fused_ds = fused if fused is not None else real_plus_syn
    runs: dict[str, list[float]] = {k: list(known.get(k, [])) for k in ("trtr", "fused")}
    runs["trts"] = []
    sizes, do_curve = _curve_sizes(low_data_sizes, len(real)), bool(low_data_sizes)
    with reuse_compiled():  # one traced loop per budget, not per model
        if "trtr" not in known:
            runs["trtr"], runs["trts"] = scores(real, test, synthetic)
        [runs["tstr"]] = scores(synthetic, test)
        if "fused" not in known:
            [runs["fused"]] = scores(fused_ds, test)
        curve = {}
        reuse = (runs["trtr"], runs["fused"] if fused is None else None)
        for n in sizes if do_curve else ():
            full = (None, None) if known else reuse
            curve.update(_curve_point(real, synthetic, test, n, seeds, full, recipe, scores))

    out = _collect(runs, curve, sizes if do_curve else None, known, fused, len(fused_ds))
    out["utility_seeds"] = seeds
    out.update({f"utility_{k}": v for k, v in recipe.items()})
    out["utility_steps"] = budget
    out["utility_seconds"] = time.perf_counter() - t0
    return out


def _curve_sizes(low_data_sizes, n_real: int) -> list[int]:
    sizes = sorted({min(int(s), n_real) for s in (low_data_sizes or ())} | {n_real})
    if any(s < 1 for s in sizes):
        raise ConfigError(f"low_data_sizes: sizes must be >= 1, got {list(low_data_sizes)}")
    return sizes


def _collect(runs, curve, sizes, known, fused, num_fused) -> dict[str, Any]:
    """The flat summary keys of `utility_metrics` from its per-seed runs."""
    out: dict[str, Any] = {}
    out.update(_stats("trtr_accuracy", runs["trtr"]))
    out.update(_stats("tstr_accuracy", runs["tstr"]))
    if runs["trts"]:
        out.update(_stats("trts_accuracy", runs["trts"]))
    out.update(_stats("real_only_accuracy", runs["trtr"]))
    out.update(_stats("fused_accuracy", runs["fused"]))
    out["fused_gain"] = out["fused_accuracy"] - out["real_only_accuracy"]
    out["fused_source"] = (
        "search" if "fused" in known else "explicit" if fused is not None else "real+synthetic"
    )
    out["num_fused"] = num_fused
    if sizes:
        out["low_data_sizes"] = sizes
        for (n, kind), values in curve.items():
            out[f"low_data.{n}.{kind}"] = float(np.mean(values))
            out[f"low_data.{n}.{kind}_std"] = float(np.std(values))
    return out


def _curve_point(real, synthetic, test, n: int, seeds, full, recipe, scores) -> dict:
    """{(n, "real"): accuracies, (n, "real+synthetic"): accuracies}, one per seed.

    At n = len(real) the runs already made for TRTR (and D' when it is real +
    synthetic) are reused: `full` holds those two lists (None: train).
    `scores(data, test, steps=...)` trains one model per seed and tests it.
    """
    if n == len(real):
        real_acc, with_syn = full
        if real_acc is None:
            [real_acc] = scores(real, test)
        if with_syn is None:
            [with_syn] = scores(concat([real, synthetic], "real+synthetic"), test)
        return {(n, "real"): real_acc, (n, "real+synthetic"): with_syn}
    parts = [subset(real, n, seed) for seed in seeds]
    steps = step_budget(
        n, epochs=recipe["epochs"], batch_size=recipe["batch_size"], min_steps=recipe["min_steps"]
    )
    with_syn = [concat([part, synthetic], f"{part.name}+syn") for part in parts]
    return {
        (n, "real"): scores(parts, test, steps=steps)[0],
        (n, "real+synthetic"): scores(with_syn, test, steps=steps)[0],
    }


def low_data_curve(summary: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Reads the low-data curve back from a flat summary, for plots and tables.

    Returns:
        {"real": {"sizes": [...], "mean": [...], "std": [...]},
        "real+synthetic": {...}}; empty when the summary has no curve.
    """
    sizes = summary.get("low_data_sizes") or []
    out: dict[str, dict[str, list[float]]] = {}
    for kind in ("real", "real+synthetic"):
        pts = [
            (n, summary[f"low_data.{n}.{kind}"], summary.get(f"low_data.{n}.{kind}_std", 0.0))
            for n in sizes
            if f"low_data.{n}.{kind}" in summary
        ]
        if pts:
            n, m, s = zip(*pts)
            out[kind] = {"sizes": list(n), "mean": list(m), "std": list(s)}
    return out
