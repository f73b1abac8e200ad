"""`evaluate`: all validation of a synthetic dataset in one call.

Distribution metrics (on features of a domain classifier, InceptionV3 or a
user model), downstream utility (TRTR, TSTR, TRTS, D vs D', the low-data
curve) and privacy (distance to closest record, memorization), returned as
one flat dict; with an output directory it also draws the figures that
`tfsynth.report.write_report` puts into report.md/.html.

The default extractor ("auto") is the domain classifier for labelled real
data. Unlabelled real data is judged without labels: "auto" is then a
self-supervised encoder trained on it, the utility metrics (which train
classifiers) are skipped, and ``extractor_note`` and ``utility_note`` say so.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfsynth.data.dataset import ImageDataset, check_compatible
from tfsynth.errors import ConfigError
from tfsynth.evaluation.distribution import distribution_metrics
from tfsynth.evaluation.features import build_extractor
from tfsynth.evaluation.privacy import nearest_neighbor_grid, pixel_vectors, privacy_metrics
from tfsynth.evaluation.utility import (
    low_data_curve,
    seed_list,
    utility_metrics,
)

if TYPE_CHECKING:  # at runtime a circular import: tfsynth.config reads the defaults here
    from tfsynth.config import EvaluateConfig

REFERENCES = ("test", "real")

# The metrics a reader looks for first, in the order the CLI prints them and
# `tfsynth run` puts them at the top of its summary.
HEADLINE = (
    "fid",
    "kid",
    "kid_std",
    "precision",
    "recall",
    "density",
    "coverage",
    "tstr_accuracy",
    "trtr_accuracy",
    "trts_accuracy",
    "fused_accuracy",
    "real_only_accuracy",
    "dcr_synthetic_median",
    "dcr_holdout_median",
    "memorization_rate",
    "mia_dcr_auc",
    "mia_density_auc",
    "privacy_guarantee",
    "extractor",
)


def _load(data, what: str) -> ImageDataset:
    from tfsynth.data.sources import load_dataset

    if isinstance(data, (str, os.PathLike)):
        data = load_dataset(os.fspath(data))
    if isinstance(data, ImageDataset):
        return data.require_labels(f"evaluate --{what}") if what == "fused" else data
    raise ConfigError(
        f"{what}: expected an ImageDataset or a dataset spec, got {type(data).__name__}"
    )


def _labels_or_not(real, synthetic, test, fused, extractor: str):
    """With labelled `real`, `test` must be labelled; with unlabelled `real`, all go label-free.

    Returns (synthetic, test) as the metrics will use them; raises DataError
    for what needs labels that `real` lacks (D vs D', the domain classifier).
    """
    if real.labeled:
        return synthetic, test.require_labels("evaluate --test") if test is not None else None
    for needs, what in ((fused is not None, "--fused (D vs D')"),
                        (extractor == "domain", "--extractor domain (a classifier)")):  # fmt: skip
        if needs:
            real.require_labels(f"evaluate {what}")
    unlabelled = [
        d.without_labels() if d is not None and d.labeled else d for d in (synthetic, test)
    ]
    return unlabelled[0], unlabelled[1]


def _cap(dataset: ImageDataset, max_samples: int | None, seed: int) -> ImageDataset:
    """A seeded random subset of at most `max_samples` rows (the rows in order)."""
    if max_samples is None or len(dataset) <= max_samples:
        return dataset
    from tfsynth.evaluation.utility import subset

    return subset(dataset, max_samples, seed)


def check_options(
    *,
    extractor: str,
    max_samples: int | None,
    classifier_epochs: int,
    extractor_epochs: int,
    seeds,
    low_data_sizes,
    min_steps: int,
    reference: str,
    test_fraction: float,
) -> None:
    """Raises ConfigError for the first bad option, before any work is done."""
    if not isinstance(extractor, str) or not extractor.strip():
        raise ConfigError(
            "extractor: expected auto, domain, inception, keras:MODEL:LAYER or ssl:DIR"
        )
    if max_samples is not None and max_samples < 10:
        raise ConfigError(f"max_samples: expected at least 10, got {max_samples}")
    for name, v in (
        ("classifier_epochs", classifier_epochs),
        ("extractor_epochs", extractor_epochs),
    ):
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
    seed_list(seeds)
    if low_data_sizes and any(int(n) < 1 for n in low_data_sizes):
        raise ConfigError(f"low_data_sizes: sizes must be >= 1, got {list(low_data_sizes)}")
    if not isinstance(min_steps, int) or min_steps < 0:
        raise ConfigError(f"min_steps: expected an integer >= 0, got {min_steps!r}")
    if reference not in REFERENCES:
        raise ConfigError(f"reference: expected one of {', '.join(REFERENCES)}, got {reference!r}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction: expected a value in (0, 1), got {test_fraction}")


def evaluate(
    real: ImageDataset | str,
    synthetic: ImageDataset | str,
    test: ImageDataset | str | None = None,
    config: EvaluateConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    fused: ImageDataset | str | None = None,
    utility_known: dict[str, Sequence[float]] | None = None,
    **options,
) -> dict[str, Any]:
    """Validates `synthetic` against real data; returns a flat summary dict.

    Args:
        real: the real training split D (what the generator was trained on),
            as an `ImageDataset` or a spec such as ``"mnist-10k[:4000]"``.
        synthetic: the synthetic data to judge (labelled like `real`, or not used).
        test: held-out real data; None splits `test_fraction` off `real`
            (seeded) and records that in ``test_source``.
        config: an `EvaluateConfig` (every option and its default; None:
            the defaults).
        out: figures go to ``out/figures/``, listed as ``figures.<name>``.
        fused: an explicit D' for "D vs D'"; default real + synthetic.
        utility_known: per-seed test accuracies already measured with the
            same recipe (``trtr``, ``fused``), e.g. by the search of the mix.
        **options: `EvaluateConfig` fields that replace the config's.

    Returns:
        A flat dict: distribution metrics (fid, kid, precision, ...), utility
        (tstr/trtr/trts/fused accuracy with _std, low_data.*), privacy (dcr_*,
        memorization_rate), the extractor, sample counts, timings, settings.

    Example:

    >>> summary = evaluate("mnist-10k[:600]", "mnist-10k[600:1200]", "mnist-10k[1200:1500]",
    ...                    seeds=1, low_data_sizes=None, cache_dir=False)  # doctest: +SKIP
    >>> summary["fid"], summary["tstr_accuracy"]  # doctest: +SKIP
    """
    c = _config(config, options)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    real, synthetic, test, fused, test_source = _inputs(
        real, synthetic, test, fused, test_fraction=c.test_fraction, seed=c.seed,
        extractor=c.extractor,
    )  # fmt: skip
    summary = _header(real, synthetic, test, test_source, c.seed)
    dist, syn = _distribution(
        real, synthetic, test, timings, extractor=c.extractor, extractor_epochs=c.extractor_epochs,
        min_steps=c.min_steps, cache_dir=c.cache_dir, reference=c.reference,
        max_samples=c.max_samples, kid_subsets=c.kid_subsets, kid_subset_size=c.kid_subset_size,
        seed=c.seed, block_size=c.block_size,
    )  # fmt: skip
    summary.update(dist)
    if c.utility:
        with _timed(timings, "utility"):
            recipe = dict(seeds=c.seeds, epochs=c.classifier_epochs, min_steps=c.min_steps)
            summary.update(
                _utility(real, synthetic, test, fused, recipe, c.low_data_sizes, utility_known)
            )
    nn = None
    if c.privacy:
        with _timed(timings, "privacy"):
            metrics, nn = _privacy(real, test, syn, c.max_samples, c.seed, c.block_size)
        summary.update(metrics, **_guarantee(synthetic))
    if out is not None:
        with _timed(timings, "figures"):
            summary.update(_figures(Path(out), real, synthetic, syn, nn, summary, c.seed))
    summary.update({f"seconds.{k}": v for k, v in timings.items()})
    summary["seconds.total"] = time.perf_counter() - t_start
    return summary


def _config(config, options) -> EvaluateConfig:
    """`config` (default `EvaluateConfig()`) with `options`, validated."""
    from tfsynth.config import EvaluateConfig

    return (config if config is not None else EvaluateConfig()).replace(**options).validate()


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Records the seconds the block took as timings[name]."""
    t = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t


def _inputs(real, synthetic, test, fused, *, test_fraction: float, seed: int, extractor: str):
    """Loads the datasets (splitting `test` off `real` when None) and checks them together.

    Returns (real, synthetic, test, fused, test_source).
    """
    real = _load(real, "real")
    synthetic = _load(synthetic, "synthetic")
    test_source = "given"
    if test is None:
        real, test = real.split([1 - test_fraction, test_fraction], seed=seed)
        test_source = f"split of real ({test_fraction:g})"
    else:
        test = _load(test, "test")
    fused = _load(fused, "fused") if fused is not None else None
    synthetic, test = _labels_or_not(real, synthetic, test, fused, extractor)
    check_compatible(real, synthetic, test, fused)
    return real, synthetic, test, fused, test_source


def _header(real, synthetic, test, test_source: str, seed: int) -> dict[str, Any]:
    """The summary's first keys: what was compared with what."""
    return {
        "real": real.name,
        "synthetic": synthetic.name,
        "test": test.name,
        "test_source": test_source,
        "num_real": len(real),
        "num_synthetic": len(synthetic),
        "num_test": len(test),
        "image_shape": list(real.shape),
        "num_classes": real.num_classes,
        "synthetic_classes_present": int(np.count_nonzero(synthetic.class_counts())),
        "seed": seed,
    }


def _distribution(
    real: ImageDataset,
    synthetic: ImageDataset,
    test: ImageDataset,
    timings: dict[str, float],
    *,
    extractor: str,
    extractor_epochs: int,
    min_steps: int,
    cache_dir,
    reference: str,
    max_samples: int | None,
    kid_subsets: int,
    kid_subset_size: int,
    seed: int,
    block_size: int,
) -> tuple[dict[str, Any], ImageDataset]:
    """Extractor info and distribution metrics; also returns the capped synthetic set."""
    out: dict[str, Any] = {}
    with _timed(timings, "extractor"):
        ext = build_extractor(
            extractor,
            train=real,
            test=test,
            epochs=extractor_epochs,
            seed=seed,
            min_steps=min_steps,
            cache_dir=cache_dir,
        )
    out.update(ext.info())
    with _timed(timings, "distribution"):
        ref = _cap(test if reference == "test" else real, max_samples, seed)
        syn = _cap(synthetic, max_samples, seed + 1)
        ref_f, syn_f = ext(ref.images), ext(syn.images)
        out.update(
            reference=reference,
            num_reference_features=len(ref_f),
            num_synthetic_features=len(syn_f),
        )
        labelled = ref.labeled and syn.labeled  # per-class FID needs both
        out.update(
            distribution_metrics(
                ref_f,
                syn_f,
                real_labels=ref.labels if labelled else None,
                fake_labels=syn.labels if labelled else None,
                class_names=real.class_names,
                kid_subsets=kid_subsets,
                kid_subset_size=kid_subset_size,
                seed=seed,
                block_size=block_size,
            )
        )
    return out, syn


def _utility(real, synthetic, test, fused, recipe, low_data_sizes, known) -> dict[str, Any]:
    """TRTR, TSTR, TRTS, D vs D' and the low-data curve (`recipe`: seeds, epochs, min_steps)."""
    if not real.labeled:  # every utility metric trains a classifier
        return {"utility_note": "utility metrics skipped: they train classifiers on labels"}
    return utility_metrics(
        real, synthetic, test, fused=fused, low_data_sizes=low_data_sizes, known=known, **recipe
    )


def _privacy(real, test, syn, max_samples, seed, block_size):
    """Pixel-space privacy metrics and the membership audit (`tfsynth.privacy.audit`).

    Returns them and (synthetic nearest-neighbour distances, indices, the
    attacks' ROC curves) for the figures.
    """
    holdout = _cap(test, max_samples, seed + 2)
    metrics, syn_d, syn_i = privacy_metrics(
        pixel_vectors(syn.images),
        pixel_vectors(real.images),
        pixel_vectors(holdout.images),
        block_size=block_size,
    )
    from tfsynth.privacy.audit import membership_audit

    members = _cap(real, max_samples, seed + 3)
    audit = membership_audit(
        pixel_vectors(members.images),
        pixel_vectors(holdout.images),
        pixel_vectors(syn.images),
        seed=seed,
    )
    roc = audit.pop("roc")
    metrics = {
        **metrics,
        **audit,
        "privacy_space": "pixel ([0, 1])",
        "num_privacy_holdout": len(holdout),
    }
    return metrics, (syn_d, syn_i, roc)


def _guarantee(synthetic: ImageDataset) -> dict[str, Any]:
    """The budget the generator of `synthetic` was trained under (its manifest says), as text."""
    manifest = synthetic.metadata.get("manifest", {})
    budget = manifest.get("metadata", {}).get("generator", {}).get("privacy")
    if not budget:
        return {"privacy_guarantee": "no formal guarantee"}
    text = (
        f"({budget['epsilon']:.3g}, {budget['delta']:g})-DP: DP-SGD, {budget['accountant']} "
        f"accountant, {budget['sampling']}, {budget['neighbouring']}"
    )
    return {"privacy_guarantee": text, "privacy_epsilon": budget["epsilon"],
            "privacy_delta": budget["delta"]}  # fmt: skip


def _figures(out, real, synthetic, syn_capped, nn, summary, seed) -> dict[str, str]:
    """Draws the report figures into out/figures; returns figures.<name> paths."""
    from tfsynth.plotting import class_grid, image_grid, save_figure
    from tfsynth.report import low_data_figure

    figs: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(synthetic), min(50, len(synthetic)), replace=False))
    images, labels = synthetic.images, synthetic.labels if synthetic.labeled else None
    figs["samples"] = image_grid(
        images[pick],
        labels[pick] if labels is not None else None,
        synthetic.class_names,
        ncols=10,
        title="synthetic samples",
    )
    if labels is not None and real.labeled:
        figs["classes"] = class_grid(
            images, labels, synthetic.class_names, title="synthetic, per class"
        )
        figs["real_classes"] = class_grid(
            real.images, real.labels, real.class_names, title="real (train), per class"
        )
    if nn is not None:
        from tfsynth.privacy.audit import roc_figure

        figs["nearest_neighbors"] = nearest_neighbor_grid(
            syn_capped.images, real.images, nn[0], nn[1], n=10
        )
        figs["membership_roc"] = roc_figure(nn[2], title=summary.get("privacy_guarantee"))
    curve = low_data_curve(summary)
    if curve:
        figs["low_data_curve"] = low_data_figure(curve)
    paths = {}
    for name, fig in figs.items():
        rel = f"figures/{name}.png"
        save_figure(fig, out / rel)
        paths[f"figures.{name}"] = rel
    return paths


def evaluate_to_dir(
    real: str | ImageDataset,
    synthetic: str | ImageDataset,
    test: str | ImageDataset | None = None,
    config: EvaluateConfig | None = None,
    *,
    out: str | os.PathLike,
    overwrite: bool = False,
    fused: str | ImageDataset | None = None,
    utility_known: dict[str, Sequence[float]] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`evaluate` plus `write_report` into a new directory `out`, atomically.

    The datasets and options are checked before anything is created; the
    report is built in a temporary sibling directory that becomes `out`
    only when everything succeeded. This is what `tfsynth evaluate` calls.

    Returns:
        The summary, plus ``out`` (the directory).
    """
    from tfsynth.io import atomic_directory
    from tfsynth.report import write_report

    out = Path(out)
    if out.exists() and not overwrite:
        from tfsynth.errors import DataError

        raise DataError(f"{out}: already exists; choose another --out or pass --overwrite")
    cfg = _config(config, options)  # bad options fail before anything is loaded
    # Load (and so validate) every input before creating the output directory.
    real = _load(real, "real")
    synthetic = _load(synthetic, "synthetic")
    test = _load(test, "test") if test is not None else None
    fused = _load(fused, "fused") if fused is not None else None
    synthetic, test = _labels_or_not(real, synthetic, test, fused, cfg.extractor)
    check_compatible(real, synthetic, test, fused)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        summary = evaluate(
            real, synthetic, test, cfg, out=tmp, fused=fused, utility_known=utility_known
        )
        write_report(tmp, summary, command="evaluate")
    return {**summary, "out": str(out)}
