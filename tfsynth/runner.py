"""`tfsynth run`: the whole pipeline in one call, resumable stage by stage.

Stages, each writing one place under the run directory OUT::

    split     OUT/data/{train,val,test}   seeded, disjoint dataset dirs
    augment   OUT/augmented               D_aug (tfsynth.augment.augment_to_dir)
    train     OUT/model                   the generator (tfsynth.training.train)
    generate  OUT/generated               D_gen (tfsynth.training.generate)
    fuse      OUT/fused                   D' (tfsynth.fusion.build_fused)
    evaluate  OUT/evaluation              metrics + figures (tfsynth.evaluation)
    export    saved_models/NAME/VERSION   SavedModel (tfsynth.export)
    report    OUT/summary.json, OUT/report.html, OUT/report.md

Every stage's output appears atomically (or resumes itself, as training and
fusion do), so "its output exists" means "finished": a rerun after an
interruption skips finished stages and continues where it stopped.
OUT/stages.json records each stage's time and outputs. This module adds no
logic of its own beyond orchestration.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfsynth.config import RunConfig
from tfsynth.errors import ConfigError
from tfsynth.evaluation.evaluate import HEADLINE
from tfsynth.io import atomic_write_json, atomic_write_text

STAGES = ("split", "augment", "train", "generate", "fuse", "evaluate", "export", "report")


class _Stages:
    """OUT/stages.json: which stages finished, when, and how long they took."""

    def __init__(self, out: Path, log: Callable[[str], None]):
        self.path = out / "stages.json"
        self.log = log
        self.record: dict[str, Any] = (
            json.loads(self.path.read_text()) if self.path.exists() else {}
        )

    def run(self, name: str, done: Callable[[], bool], work: Callable[[], Any]) -> None:
        if done():
            self.log(f"[{name}] already done, skipped")
            self.record.setdefault(name, {})["skipped_runs"] = (
                self.record.get(name, {}).get("skipped_runs", 0) + 1
            )
            atomic_write_json(self.path, self.record)
            return
        self.log(f"[{name}] ...")
        t0 = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - t0
        entry = {"seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if isinstance(result, dict):
            entry.update(result)
        self.record[name] = entry
        atomic_write_json(self.path, self.record)
        self.log(f"[{name}] done in {seconds:.1f}s")


def _check_config(out: Path, config: RunConfig) -> None:
    path = out / "config.json"
    if path.exists():
        stored = RunConfig.from_json(path.read_text())
        if stored != config:
            raise ConfigError(
                f"{path}: this run directory was started with a different config "
                f"(preset {stored.preset!r}, data {stored.data.spec!r}, model {stored.train.model!r}); "
                "rerun with the same options to resume, or choose another --out"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, config.to_json())


def run(
    config: RunConfig,
    *,
    out: str | os.PathLike,
    saved_models: str | os.PathLike = "saved_models",
    log: Callable[[str], None] = print,
    verbose: int | str = "auto",
) -> dict[str, Any]:
    """Runs (or resumes) the whole pipeline; returns the run summary.

    Args:
        config: a validated `RunConfig` (see `tfsynth.config.preset`).
        out: the run directory; rerunning with the same config resumes.
        saved_models: root of the SavedModel export (TF Serving layout).
        log: where progress lines go.
        verbose: Keras progress-bar verbosity while training; "auto" shows a
            bar on a terminal and one line per epoch in logs and CI.

    Example:

    >>> from tfsynth.config import preset
    >>> summary = run(preset("smoke"), out="runs/smoke")  # doctest: +SKIP
    >>> summary["tstr_accuracy"], summary["report"]  # doctest: +SKIP
    """
    from tfsynth.augment import augment_to_dir
    from tfsynth.data import load_dataset, write_dataset_dir
    from tfsynth.evaluation import evaluate_to_dir
    from tfsynth.export import export_generator
    from tfsynth.fusion import build_fused
    from tfsynth.training import generate, train

    config.validate()
    if verbose == "auto":
        # A live bar redraws each step: fine on a terminal, noise in a log file.
        verbose = 1 if sys.stdout.isatty() else 2
    out = Path(out)
    t_start = time.perf_counter()
    data_dir = out / "data"
    splits = {k: data_dir / k for k in ("train", "val", "test")}
    # Load the real data before creating anything, so that a bad spec leaves
    # no run directory behind.
    real = None if all(p.exists() for p in splits.values()) else load_dataset(config.data.spec)
    _check_config(out, config)
    stages = _Stages(out, log)
    seed = config.seed

    def split():
        ds = real
        d = config.data
        train_frac = 1.0 - d.val_fraction - d.test_fraction
        parts = ds.split([train_frac, d.val_fraction, d.test_fraction], seed=seed)
        for (name, path), part in zip(splits.items(), parts):
            if not path.exists():
                write_dataset_dir(
                    path, part, metadata={"source": config.data.spec, "split": name, "seed": seed}
                )
        return {name: len(part) for name, part in zip(splits, parts)}

    stages.run("split", lambda: all(p.exists() for p in splits.values()), split)
    train_ds = load_dataset(str(splits["train"]))
    if config.train.max_train_examples:
        train_ds = train_ds[: config.train.max_train_examples]

    aug_dir, figures_dir = out / "augmented", out / "figures"
    stages.run(
        "augment",
        aug_dir.exists,
        lambda: {
            "num_examples": augment_to_dir(
                train_ds,
                config.augment.policy,
                config.augment.num_examples,
                seed=seed,
                out=aug_dir,
                preview=figures_dir / "augment_preview.png",
            )["num_examples"]
        },
    )

    model_dir = out / "model"
    model_path = model_dir / "model.keras"
    t = config.train

    def train_stage():
        s = train(
            train_ds,
            t.model,
            epochs=t.epochs,
            out_dir=model_dir,
            batch_size=t.batch_size,
            seed=seed,
            width=t.width,
            latent_dim=t.latent_dim,
            verbose=verbose,
        )
        return {k: s[k] for k in ("steps", "images_per_second") if k in s}

    stages.run("train", model_path.exists, train_stage)

    gen_dir = out / "generated"
    stages.run(
        "generate",
        gen_dir.exists,
        lambda: {
            "num_examples": generate(
                model_path,
                config.generate.num_examples,
                labels=config.generate.labels,
                seed=seed,
                out=gen_dir,
            )["num_examples"]
        },
    )

    fused_dir = out / "fused"
    f = config.fuse
    stages.run(
        "fuse",
        lambda: (fused_dir / "manifest.json").exists(),
        lambda: {
            "num_examples": build_fused(
                real=str(splits["train"]),
                # Both synthetic sources stream on the fly, so D' can be any
                # size and rebalance classes (D_aug/D_gen dirs are for review
                # and evaluation).
                aug_policy=config.augment.policy,
                gen=str(model_path),
                ratios=f.ratios,
                size=f.size,
                class_target=f.class_target,
                seed=seed,
                num_shards=f.num_shards,
                out=fused_dir,
            )["num_examples"]
        },
    )

    eval_dir = out / "evaluation"
    e = config.evaluate

    def evaluate_stage():
        s = evaluate_to_dir(
            train_ds,
            str(gen_dir),
            str(splits["test"]),
            out=eval_dir,
            fused=str(fused_dir),
            max_samples=e.max_samples,
            classifier_epochs=e.classifier_epochs,
            extractor_epochs=e.extractor_epochs,
            seeds=e.seeds,
            low_data_sizes=e.low_data_sizes,
            min_steps=e.min_steps,
            seed=seed,
        )
        return {"fid": s.get("fid"), "tstr_accuracy": s.get("tstr_accuracy")}

    stages.run("evaluate", lambda: (eval_dir / "summary.json").exists(), evaluate_stage)

    name = out.name
    stages.run(
        "export",
        lambda: (
            "path" in stages.record.get("export", {})
            and Path(stages.record["export"]["path"]).exists()
        ),
        lambda: {"path": str(export_generator(model_path, saved_models, name=name))},
    )

    summary: dict[str, Any] = {}

    def report_stage():
        wall = time.perf_counter() - t_start
        summary.update(_write_run_report(out, config, stages.record, wall))
        return {"path": summary["report"]}

    # Always rewritten: it is cheap and records this invocation's wall time.
    stages.run("report", lambda: False, report_stage)
    log(f"report:   {summary['report']}")
    log(f"summary:  {out / 'summary.json'}")
    log(f"model:    {model_path}")
    log(f"export:   {stages.record['export']['path']}")
    log(f"tensorboard --logdir {model_dir / 'tensorboard'}")
    return summary


def _write_run_report(out: Path, config: RunConfig, stages: dict, wall: float) -> dict[str, Any]:
    from tfsynth.report import write_report

    ev = json.loads((out / "evaluation" / "summary.json").read_text())
    train_summary = json.loads((out / "model" / "summary.json").read_text())
    summary: dict[str, Any] = {k: ev[k] for k in HEADLINE if k in ev}
    summary.update(
        {
            "wall_seconds": round(wall, 2),
            "stage_seconds_total": round(sum(s.get("seconds", 0) for s in stages.values()), 2),
            "data": config.data.spec,
            "model": config.train.model,
            "preset": config.preset,
            "seed": config.seed,
            "num_train": stages.get("split", {}).get("train"),
            "num_val": stages.get("split", {}).get("val"),
            "num_test": stages.get("split", {}).get("test"),
            "num_augmented": stages.get("augment", {}).get("num_examples"),
            "num_generated": stages.get("generate", {}).get("num_examples"),
            "num_fused": stages.get("fuse", {}).get("num_examples"),
            "train_images_per_second": train_summary.get("images_per_second"),
            "export_path": stages.get("export", {}).get("path"),
            "report": str(out / "report.html"),
        }
    )
    for k, v in stages.items():
        if "seconds" in v:
            summary[f"stage_seconds.{k}"] = v["seconds"]
    # The rest of the evaluation record (sample counts, extractor accuracy,
    # per-class FID, low-data curve...) keeps its keys, so the report reads it.
    for k, v in ev.items():
        if k not in summary and not k.startswith(("figures.", "versions.", "command", "created")):
            summary[k] = v
    summary["config"] = config.to_dict()
    figures = {
        k.removeprefix("figures."): f"evaluation/{v}"
        for k, v in ev.items()
        if k.startswith("figures.")
    }
    samples = sorted((out / "model" / "samples").glob("*.png"))
    if samples:
        figures = {"generator_samples": str(samples[-1].relative_to(out)), **figures}
    if (out / "figures" / "augment_preview.png").exists():
        figures["augment_preview"] = "figures/augment_preview.png"
    write_report(
        out,
        summary,
        figures,
        command="run",
        title=f"tfsynth run: {config.data.spec}, {config.train.model}, preset {config.preset}",
        sections=[("Stages", {k: v.get("seconds") for k, v in stages.items()})],
    )
    return json.loads((out / "summary.json").read_text())
