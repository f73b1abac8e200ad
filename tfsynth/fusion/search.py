"""The mix of D' chosen on the validation split (Step 5 of the method).

A small grid of candidate mixes, each a `FusionConfig` built in memory
through the same layout as `build_fused` (`tfsynth.fusion.materialize`):

- ``multiplier``: synthetic examples per real example (0 = real only);
- ``gen_share``: the generator's share of the synthetic part (the rest is
  augmentation); 0 means augmentation only, 1 generator only;
- ``min_confidence``: the curation threshold of the generated samples;
- ``generator``: which trained generator, when several were trained;
- ``pseudo``: the share of D_pseudo's images added (`tfsynth pseudo-label`),
  when a pseudo-labelled set is given: every candidate above also appears
  with each of `pseudo_shares`, and without.

Every candidate trains the fixed classifier (`tfsynth.evaluation.classifier`)
with the *step budget of the real data alone*, once per seed, and is scored
by its mean accuracy on the validation split (its mean cross-entropy breaks
ties, which small validation sets make common). Real only (multiplier 0) is
always a candidate and wins exact ties, so the chosen D' is never worse than
D on validation. The test split, when given, is only reported: the same trained
models are tested on it, and nothing is chosen from those numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.config import FuseConfig, SemiConfig
from tfsynth.data.dataset import ImageDataset
from tfsynth.errors import ConfigError
from tfsynth.evaluation.classifier import (
    DEFAULT_EPOCHS,
    accuracy,
    predict_proba,
    reuse_compiled,
    step_budget,
    train_classifiers,
)
from tfsynth.fusion.builder import _is_model
from tfsynth.fusion.plan import POOL

REAL_ONLY = "real only"
# "auto" multipliers: 1, and enough synthetic data to bring D' to about this
# many examples (at most MAX_AUTO_MULTIPLIER per real image).
AUTO_TARGET = 4000
MAX_AUTO_MULTIPLIER = 32


def auto_multipliers(num_real: int) -> tuple[float, ...]:
    """1x and the multiplier that brings D' to about AUTO_TARGET examples.

    Small sets gain most from many varied synthetic examples; at 7,000 real
    images one more copy's worth is the most the quick preset can afford.

    Example:

    >>> auto_multipliers(100), auto_multipliers(500), auto_multipliers(7000)
    ((1.0, 32.0), (1.0, 7.0), (1.0,))
    """
    big = min(MAX_AUTO_MULTIPLIER, max(1, round(AUTO_TARGET / max(1, num_real)) - 1))
    return tuple(sorted({1.0, float(big)}))


@dataclass
class SearchConfig:
    """The grid of `search_mix` and the classifier recipe that scores it.

    Example:

    >>> cfg = SearchConfig(multipliers=(1.0,), gen_shares=(0.0, 0.5))  # "auto": by data size
    >>> [c.label for c in candidates(cfg, has_aug=True, generators={"cgan": "m.keras"})]
    ['real only', 'real + 1x (aug)', 'real + 1x (aug 50%, cgan 50%, conf >= 0.9)']
    """

    # The grid's defaults are FuseConfig's (the CLI's and run's), defined once there.
    multipliers: tuple[float, ...] | str = FuseConfig.multipliers
    gen_shares: tuple[float, ...] = FuseConfig.gen_shares
    min_confidences: tuple[float, ...] = FuseConfig.min_confidences
    seeds: int = FuseConfig.search_seeds
    epochs: int = DEFAULT_EPOCHS
    min_steps: int = 300
    batch_size: int = 64
    pseudo_shares: tuple[float, ...] = SemiConfig.pseudo_shares  # used when D_pseudo is given

    def validate(self) -> SearchConfig:
        """Raises ConfigError naming the first bad grid value."""
        if isinstance(self.multipliers, str) and self.multipliers != "auto":
            raise ConfigError(
                f"search.multipliers: expected 'auto' or numbers >= 0, got {self.multipliers!r}"
            )
        multipliers = () if self.multipliers == "auto" else self.multipliers
        for name, values, ok, want in (
            ("multipliers", multipliers or (1.0,), lambda v: v >= 0, ">= 0"),
            ("gen_shares", self.gen_shares, lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("min_confidences", self.min_confidences, lambda v: 0 < v < 1, "in (0, 1)"),
            ("pseudo_shares", self.pseudo_shares, lambda v: 0 < v <= 1, "in (0, 1]"),
        ):
            if not values or not all(isinstance(v, (int, float)) and ok(v) for v in values):
                raise ConfigError(f"search.{name}: expected numbers {want}, got {list(values)}")
        for name in ("seeds", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"search.{name}: expected a positive integer, got {v!r}")
        return self


@dataclass(frozen=True)
class Candidate:
    """One mix of the grid."""

    multiplier: float = 0.0
    gen_share: float = 0.0
    min_confidence: float | None = None
    generator: str | None = None
    pseudo: float = 0.0

    @property
    def uses_gen(self) -> bool:
        return self.multiplier > 0 and self.gen_share > 0

    @property
    def uses_pseudo(self) -> bool:
        return self.pseudo > 0

    @property
    def uses_aug(self) -> bool:
        return self.multiplier > 0 and self.gen_share < 1

    @property
    def family(self) -> str:
        """D, D+aug, D+gen, D+aug+gen (each +pseudo): which sources it adds to the real data."""
        return "D" + "+aug" * self.uses_aug + "+gen" * self.uses_gen + "+pseudo" * self.uses_pseudo

    @property
    def label(self) -> str:
        if self.multiplier == 0 and not self.uses_pseudo:
            return REAL_ONLY
        head = "real"
        if self.uses_pseudo:
            head += " + pseudo" + ("" if self.pseudo == 1 else f" {self.pseudo:.0%}")
        if self.multiplier == 0:
            return head
        parts = []
        if self.uses_aug:
            parts.append("aug" if not self.uses_gen else f"aug {1 - self.gen_share:.0%}")
        if self.uses_gen:
            share = "" if not self.uses_aug else f" {self.gen_share:.0%}"
            conf = "" if self.min_confidence is None else f", conf >= {self.min_confidence:g}"
            parts.append(f"{self.generator}{share}{conf}")
        return f"{head} + {self.multiplier:g}x ({', '.join(parts)})"

    def ratios(self) -> str:
        m, g = self.multiplier, self.gen_share
        weights = {"real": 1.0, "aug": m * (1 - g), "gen": m * g}
        return ",".join(f"{k}={v:.6g}" for k, v in weights.items() if v > 0)

    def counts(self, num_real: int, num_pseudo: int) -> str:
        """Exact counts (a share of D_pseudo is a number of images, not a ratio of real).

        >>> Candidate(2.0, 0.25, pseudo=0.5).counts(100, 601)
        'real=100,aug=150,gen=50,pseudo=300'
        """
        m, g = self.multiplier, self.gen_share
        n = {"real": num_real, "aug": round(m * (1 - g) * num_real),
             "gen": round(m * g * num_real), "pseudo": round(self.pseudo * num_pseudo)}  # fmt: skip
        return ",".join(f"{k}={v}" for k, v in n.items() if v > 0)


@dataclass(frozen=True)
class PseudoSet:
    """D_pseudo as the grid sees it: its dataset directory and its size.

    Example:

    >>> pseudo = PseudoSet("runs/r/pseudo", num_examples=601)
    >>> Candidate(1.0, pseudo=1.0).counts(100, pseudo.num_examples)
    'real=100,aug=100,pseudo=601'
    """

    path: str
    num_examples: int

    @classmethod
    def load(cls, path: str | os.PathLike, real: ImageDataset) -> PseudoSet:
        """Reads a `tfsynth pseudo-label` directory; DataError unless it matches `real`."""
        from tfsynth.data.dataset import check_compatible
        from tfsynth.data.sources import load_dataset

        ds = load_dataset(os.fspath(path)).require_labels("the search's pseudo source")
        check_compatible(real, ds)
        return cls(os.fspath(path), len(ds))


def candidates(
    config: SearchConfig,
    *,
    has_aug: bool,
    generators: Mapping[str, Any],
    has_pseudo: bool = False,
) -> list[Candidate]:
    """The grid, real only first; mixes that need a missing source are left out.

    With `has_pseudo`, each of those mixes once more with each pseudo share.
    """
    out = [Candidate()]
    for m, g in itertools.product(config.multipliers, config.gen_shares):
        if m == 0 or (g < 1 and not has_aug):
            continue
        if g == 0:
            out.append(Candidate(m, 0.0))
            continue
        for name, path in generators.items():
            # A generated dataset directory is used as it is: nothing to curate.
            thresholds = config.min_confidences if _is_model(str(path)) else (None,)
            out.extend(Candidate(m, g, t, name) for t in thresholds)
    base = list(dict.fromkeys(out))
    if not has_pseudo:
        return base
    return base + [dataclasses.replace(c, pseudo=p) for p in config.pseudo_shares for c in base]


def _mix(
    real: ImageDataset,
    cand: Candidate,
    *,
    aug_policy,
    generators,
    seed: int,
    class_target,
    pseudo: PseudoSet | None = None,
):
    """The candidate's D', in memory, exactly as `build_fused` would write it."""
    from tfsynth.fusion.builder import FusionConfig, materialize

    if cand.multiplier == 0 and not cand.uses_pseudo:
        return real
    fields = fusion_config_of(
        cand, real=real, aug_policy=aug_policy, generators=generators, seed=seed,
        pseudo=pseudo, class_target=class_target,
    )  # fmt: skip
    return materialize(FusionConfig(real=real, num_shards=1, **fields))


def fusion_config_of(
    cand: Candidate,
    *,
    real,
    aug_policy,
    generators,
    seed: int,
    pseudo: PseudoSet | None = None,
    class_target="match",
) -> dict:
    """The `FusionConfig` fields that build the candidate with `build_fused`.

    A candidate with D_pseudo gives exact `counts`, and the class target
    "match" becomes "pool" (`tfsynth.fusion.plan.pool_targets`): the real
    distribution may ask the pseudo images for more of a class than the
    pseudo-labeller kept.
    """
    n = len(real) if isinstance(real, ImageDataset) else None
    fields = {
        "aug_policy": aug_policy if cand.uses_aug else None,
        "gen": str(generators[cand.generator]) if cand.uses_gen else None,
        "min_confidence": cand.min_confidence if cand.uses_gen else None,
        "seed": seed,
        "class_target": class_target,
    }
    if not cand.uses_pseudo:
        size = round(n * (1 + cand.multiplier)) if n is not None else None
        return {**fields, "ratios": cand.ratios(), "size": size}
    if class_target == "match":
        fields["class_target"] = POOL
    return {**fields, "counts": cand.counts(n, pseudo.num_examples), "pseudo": pseudo.path}


def _score(
    data: ImageDataset, real_n: int, config: SearchConfig, val, test
) -> dict[str, list[float]]:
    steps = step_budget(
        real_n, epochs=config.epochs, batch_size=config.batch_size, min_steps=config.min_steps
    )
    runs: dict[str, list[float]] = {"val": [], "val_loss": [], "test": []}
    models = train_classifiers(
        data, seeds=range(config.seeds), steps=steps, batch_size=config.batch_size
    )  # the seeds side by side: one loop, same results as one by one
    for model in models:
        probs = predict_proba(model, val.images)
        runs["val"].append(float(np.mean(probs.argmax(1) == val.labels)))
        picked = probs[np.arange(len(probs)), val.labels]
        runs["val_loss"].append(float(-np.mean(np.log(np.maximum(picked, 1e-7)))))
        if test is not None:
            runs["test"].append(accuracy(model, test))
    return runs


def _rank(row: Mapping[str, Any]) -> tuple[float, float]:
    """Validation accuracy first; its cross-entropy breaks ties (small sets tie often)."""
    return (round(row["val_accuracy"], 9), -round(row.get("val_loss", 0.0), 9))


def search_mix(
    real: ImageDataset,
    val: ImageDataset,
    *,
    aug_policy: str | None = None,
    generators: Mapping[str, str | os.PathLike] | None = None,
    test: ImageDataset | None = None,
    config: SearchConfig | None = None,
    seed: int = 0,
    class_target: str = "match",
    log: Callable[[str], None] | None = None,
    pseudo: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Scores every candidate mix on `val` and picks the best (see the module docstring).

    Args:
        real: the real training data D.
        val: the validation split (labelled, never trained on).
        aug_policy: the augmentation policy of the aug source (None: no aug).
        generators: name -> model.keras (or run directory) of each generator
            that may feed D'; failed generators should be left out.
        test: optional held-out data, reported only.
        config: the grid and classifier recipe.
        seed: the fusion seed of every candidate.
        class_target: the class distribution of every candidate D'.
        log: where one progress line per candidate goes.
        pseudo: a `tfsynth pseudo-label` dataset directory (D_pseudo), or None.

    Returns:
        ``table`` (one row per candidate: label, family, grid values,
        val/test accuracy mean, std and runs, size, seconds), ``chosen``
        (the row index), ``chosen_fusion`` (FusionConfig fields), and
        ``ladder``: per family the candidate best on validation.
    """
    from tfsynth.data.dataset import check_compatible

    config = (config or SearchConfig()).validate()
    if config.multipliers == "auto":
        config = dataclasses.replace(config, multipliers=auto_multipliers(len(real)))
    generators = dict(generators or {})
    check_compatible(real, val, test)
    pseudo = PseudoSet.load(pseudo, real) if pseudo is not None else None
    grid = candidates(
        config, has_aug=bool(aug_policy), generators=generators, has_pseudo=pseudo is not None
    )
    if len(grid) == 1:
        raise ConfigError(
            "search: the grid has no candidate with synthetic data (give an augmentation "
            "policy, a generator or a pseudo-labelled set, and a multiplier > 0)"
        )
    rows = []
    mix = dict(aug_policy=aug_policy, generators=generators, seed=seed,
               class_target=class_target, pseudo=pseudo)  # fmt: skip
    with reuse_compiled():  # every candidate trains the same recipe and budget
        for i, cand in enumerate(grid):
            rows.append(_evaluate_candidate(cand, real, val, test, config, mix))
            if log is not None:
                r = rows[-1]
                score = f"val {r['val_accuracy']:.4f}" if "val_accuracy" in r else r["error"]
                log(f"  [{i + 1}/{len(grid)}] {cand.label}: {score}")
    feasible = [i for i, r in enumerate(rows) if "val_accuracy" in r]
    chosen = max(feasible, key=lambda i: (*_rank(rows[i]), -i))
    return {
        "table": rows,
        "chosen": chosen,
        "chosen_fusion": fusion_config_of(
            grid[chosen],
            real=real,
            aug_policy=aug_policy,
            generators=generators,
            seed=seed,
            pseudo=pseudo,
            class_target=class_target,
        ),  # fmt: skip
        "ladder": ladder(rows),
        "config": dataclasses.asdict(config),
    }


def _evaluate_candidate(cand, real, val, test, config, mix: dict):
    """One row of the table (`mix`: `_mix`'s keywords); a mix that cannot be built is recorded."""
    from tfsynth.errors import DataError

    t0 = time.perf_counter()
    try:
        data = _mix(real, cand, **mix)
    except DataError as e:  # e.g. curation cannot fill a class at this threshold
        row = _row(cand, None, {}, time.perf_counter() - t0)
        row["error"] = str(e)
        return row
    runs = _score(data, len(real), config, val, test)
    return _row(cand, data, runs, time.perf_counter() - t0)


def _row(cand: Candidate, data, runs, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "label": cand.label,
        "family": cand.family,
        **dataclasses.asdict(cand),
        "num_examples": len(data) if data is not None else 0,
        "seconds": round(seconds, 2),
    }
    for split, values in runs.items():
        if values:
            key = split if split.endswith("_loss") else f"{split}_accuracy"
            row[key] = float(np.mean(values))
            row[f"{key}_std"] = float(np.std(values))
            row[f"{key}_runs"] = [float(v) for v in values]
    return row


def ladder(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Per family (D, D+aug, D+gen, D+aug+gen), the row index best on validation."""
    best: dict[str, int] = {}
    for i, r in enumerate(rows):
        if "val_accuracy" not in r:
            continue
        j = best.get(r["family"])
        if j is None or _rank(r) > _rank(rows[j]):
            best[r["family"]] = i
    return best


def flat_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """Flat summary.json keys: the chosen mix, D and D' on val/test, the ladder."""
    rows, chosen = result["table"], result["chosen"]
    d, dp = rows[0], rows[chosen]
    out: dict[str, Any] = {
        "search_chosen": chosen,
        "search_chosen_label": dp["label"],
        "search_candidates": len(rows),
        "search_seeds": result["config"]["seeds"],
    }
    for name, r in (("d", d), ("dprime", dp)):
        for split in ("val", "test"):
            if f"{split}_accuracy" in r:
                out[f"{name}_{split}_accuracy"] = r[f"{split}_accuracy"]
                out[f"{name}_{split}_accuracy_std"] = r[f"{split}_accuracy_std"]
    for family, i in result["ladder"].items():
        out[f"ladder.{family}.label"] = rows[i]["label"]
        for split in ("val", "test"):
            if f"{split}_accuracy" in rows[i]:
                out[f"ladder.{family}.{split}_accuracy"] = rows[i][f"{split}_accuracy"]
                out[f"ladder.{family}.{split}_accuracy_std"] = rows[i][f"{split}_accuracy_std"]
    return out


def write_hparams(result: Mapping[str, Any], log_dir: str | os.PathLike) -> Path:
    """One TensorBoard HParams run per candidate (grid values -> val/test accuracy)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    log_dir = Path(log_dir)
    for i, r in enumerate(result["table"]):
        if "val_accuracy" not in r:
            continue
        with tf.summary.create_file_writer(str(log_dir / f"candidate_{i:02d}")).as_default():
            hp.hparams(
                {
                    "multiplier": float(r["multiplier"]),
                    "gen_share": float(r["gen_share"]),
                    "min_confidence": float(r["min_confidence"] or 0.0),
                    "generator": str(r["generator"] or "none"),
                    "pseudo": float(r.get("pseudo", 0.0)),
                },
                trial_id=r["label"],
            )
            for split in ("val", "test"):
                if f"{split}_accuracy" in r:
                    tf.summary.scalar(f"search/{split}_accuracy", r[f"{split}_accuracy"], step=0)
    return log_dir


def search_figure(result: Mapping[str, Any]):
    """Bar chart of each candidate's validation (and test) accuracy, the chosen one marked."""
    import matplotlib.pyplot as plt

    rows = [r for r in result["table"] if "val_accuracy" in r]
    chosen_label = result["table"][result["chosen"]]["label"]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    splits = [s for s in ("val", "test") if f"{s}_accuracy" in rows[0]]
    h = 0.8 / len(splits)
    for k, split in enumerate(splits):
        means = [r[f"{split}_accuracy"] for r in rows]
        stds = [r[f"{split}_accuracy_std"] for r in rows]
        ax.barh(y + k * h, means, h, xerr=stds, label=split, alpha=0.85)
    lo = min(r[f"{s}_accuracy"] for r in rows for s in splits)
    ax.set_xlim(max(0.0, lo - 0.05), 1.0)
    ax.set_yticks(y + h * (len(splits) - 1) / 2)
    ax.set_yticklabels([("* " if r["label"] == chosen_label else "") + r["label"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("classifier accuracy (mean over seeds)")
    ax.set_title("D' search: chosen on validation (*); test reported only")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def build_searched(
    real,
    val,
    *,
    out: str | os.PathLike,
    aug_policy: str | None = None,
    gen: str | os.PathLike | None = None,
    config: SearchConfig | None = None,
    seed: int = 0,
    class_target: str = "match",
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    pseudo: str | os.PathLike | None = None,
    **fuse_kwargs,
) -> dict[str, Any]:
    """`tfsynth fuse --search`: chooses the mix on `val`, then builds it with `build_fused`.

    The search's table is recorded in the manifest (``metadata.search``), so
    D' says how it was chosen. `real` and `val` are specs or ImageDatasets;
    `gen` a generator (model.keras or its run directory) or a generated
    dataset directory; `pseudo` a pseudo-label dataset directory. Returns
    the manifest.
    """
    from tfsynth.data.sources import load_dataset
    from tfsynth.fusion.builder import build_fused

    config = (config or SearchConfig()).validate()
    real_ds = real if isinstance(real, ImageDataset) else load_dataset(os.fspath(real))
    val_ds = val if isinstance(val, ImageDataset) else load_dataset(os.fspath(val))
    real_ds.require_labels("fuse --search --real")
    val_ds.require_labels("fuse --search --val")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; choose another --out or pass --overwrite")
    generators = (
        {Path(gen).stem if str(gen).endswith(".keras") else Path(gen).name: gen} if gen else {}
    )
    result = search_mix(
        real_ds,
        val_ds,
        aug_policy=aug_policy,
        generators=generators,
        config=config,
        seed=seed,
        class_target=class_target,
        log=log,
        pseudo=pseudo,
    )
    fusion = dict(result["chosen_fusion"])
    fusion = {k: v for k, v in fusion.items() if v is not None}
    return build_fused(
        real=real_ds,
        out=out,
        overwrite=overwrite,
        extra={"search": {"table": result["table"], "chosen": result["chosen"]}},
        **{**fuse_kwargs, **fusion},
    )
