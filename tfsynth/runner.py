"""`tfsynth run`: the whole pipeline in one call, resumable stage by stage.

Stages, each writing one place under the run directory OUT::

    split     OUT/data/{train,val,test}   seeded, disjoint dataset dirs
    augment   OUT/augmented               D_aug preview set (tfsynth.augment.augment_to_dir)
    ssl       OUT/ssl                     with --unlabeled: SSL encoder on train + unlabelled images
    pseudo    OUT/pseudo                  with --unlabeled: D_pseudo (tfsynth.selfsup.pseudo_label)
    train     OUT/models/NAME             each generator, checked on val (tfsynth.training.train)
    generate  OUT/generated/NAME          curated D_gen (tfsynth.generation.generate)
    search    OUT/search                  the mix chosen on val (tfsynth.fusion.search)
    fuse      OUT/fused                   D' = the chosen mix (tfsynth.fusion.build_fused)
    evaluate  OUT/evaluation              metrics on the test split (tfsynth.evaluation)
    export    saved_models/NAME/VERSION   SavedModel of the generator (tfsynth.export)
    report    OUT/summary.json, OUT/report.html, OUT/report.md

The validation split chooses the checkpoint of each generator, the mix of
D' (with or without D_pseudo) and the generator that feeds it; the test
split only reports. Every stage's output appears atomically (or resumes
itself, as training and fusion do), so "its output exists" means
"finished": a rerun after an interruption skips finished stages. OUT/stages.json records each stage's
time and outputs. This module adds no logic beyond orchestration.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfsynth.config import RunConfig
from tfsynth.errors import ConfigError, DataError
from tfsynth.io import atomic_write_json, atomic_write_text

STAGES = (
    "split",
    "augment",
    "ssl",
    "pseudo",
    "train",
    "generate",
    "search",
    "fuse",
    "evaluate",
    "export",
    "report",
)
# Below this many training images, `diffaugment="auto"` turns DiffAugment on.
DIFFAUGMENT_BELOW = 2000
DIFFAUGMENT_POLICY = "translation,cutout"


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
        self.log(f"[{name}] done in {seconds:.1f} s")


@dataclass
class _Run:
    """The run directory's layout and what the stages hand each other."""

    config: RunConfig
    out: Path
    log: Callable[[str], None]
    verbose: int
    saved_models: Path
    datasets: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config.seed

    def split_dir(self, name: str) -> Path:
        return self.out / "data" / name

    def model_dir(self, name: str) -> Path:
        return self.out / "models" / name

    def gen_dir(self, name: str) -> Path:
        return self.out / "generated" / name

    def dataset(self, name: str):
        """The train/val/test split, loaded once."""
        from tfsynth.data import load_dataset

        if name not in self.datasets:
            ds = load_dataset(str(self.split_dir(name)))
            if name == "train" and self.config.train.max_train_examples:
                ds = ds[: self.config.train.max_train_examples]
            self.datasets[name] = ds
        return self.datasets[name]


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


def _split_parts(config: RunConfig) -> dict[str, Any]:
    """The train/val/test parts in memory; raises before anything is written."""
    from tfsynth.data import load_dataset
    from tfsynth.data.dataset import check_compatible
    from tfsynth.models import check_image_shape

    d = config.data
    real = load_dataset(d.spec).require_labels("run --data")
    vf = d.val_fraction_for(len(real))
    if d.test_spec:
        parts = real.split([1.0 - vf, vf], seed=config.seed)
        test = load_dataset(d.test_spec)
        check_compatible(real, test)
        parts.append(test)
    else:
        parts = real.split([1.0 - vf - d.test_fraction, vf, d.test_fraction], seed=config.seed)
    named = dict(zip(("train", "val", "test"), parts))
    for m in config.train.models:  # e.g. a U-Net that cannot halve the sides
        check_image_shape(m, real.shape)
    batch = max(config.train.for_model(m)["batch_size"] for m in config.train.models)
    for name, part in named.items():
        if len(part) == 0 or (name == "train" and len(part) < batch):
            raise DataError(
                f"{d.spec}: {len(real)} images leave {len(part)} for the {name} split "
                f"(val {vf:g}, test {d.test_fraction:g}, batch {batch}); "
                "give more data or change the fractions"
            )
    return named


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
    >>> summary["verdict"], summary["report"]  # doctest: +SKIP
    """
    config.validate()
    if verbose == "auto":
        # A live bar redraws each step: fine on a terminal, noise in a log file.
        verbose = 1 if sys.stdout.isatty() else 2
    out = Path(out)
    r = _Run(config, out, log, verbose, Path(saved_models))
    t_start = time.perf_counter()
    splits_done = all(r.split_dir(k).exists() for k in ("train", "val", "test"))
    # Split in memory before creating anything: bad data leaves no run directory.
    parts = None if splits_done else _split_parts(config)
    _check_dp(config, parts)
    _check_unlabeled(r, parts)
    _check_config(out, config)
    stages = _Stages(out, log)
    stages.run("split", lambda: splits_done, lambda: _split(r, parts))
    stages.run("augment", (out / "augmented").exists, lambda: _augment(r))
    _semi_stages(r, stages)
    models = config.train.models
    stages.run("train", lambda: _all_done(r, models, "train"), lambda: _train(r, models))
    stages.run("generate", lambda: _all_done(r, models, "generate"), lambda: _generate(r, models))
    search_file = out / "search" / "search.json"
    stages.run("search", search_file.exists, lambda: _search(r, models))
    stages.run("fuse", (out / "fused" / "manifest.json").exists, lambda: _fuse(r))
    eval_summary = out / "evaluation" / "summary.json"
    stages.run("evaluate", eval_summary.exists, lambda: _evaluate(r))
    stages.run(
        "export",
        lambda: Path(stages.record.get("export", {}).get("path", "\0")).exists(),
        lambda: _export(r),
    )
    summary: dict[str, Any] = {}

    def report_stage():
        from tfsynth.run_report import write_run_report

        wall = time.perf_counter() - t_start
        summary.update(write_run_report(out, config, stages.record, wall))
        return {"path": summary["report"]}

    # Always rewritten: it is cheap and records this invocation's wall time.
    stages.run("report", lambda: False, report_stage)
    chosen = _chosen_generator(r)
    log(f"verdict:  {summary.get('verdict', '')}")
    log(f"report:   {summary['report']}")
    log(f"summary:  {out / 'summary.json'}")
    log(f"export:   {stages.record['export']['path']}")
    log(f"tensorboard --logdir {r.model_dir(chosen) / 'tensorboard'}")
    return summary


def _all_done(r: _Run, models, stage: str) -> bool:
    if stage == "train":
        return all((r.model_dir(m) / "model.keras").exists() for m in models)
    return all(r.gen_dir(m).exists() for m in models)


def _split(r: _Run, parts) -> dict[str, int]:
    from tfsynth.data import write_dataset_dir

    meta = {"source": r.config.data.spec, "seed": r.seed}
    for name, part in parts.items():
        if not r.split_dir(name).exists():
            write_dataset_dir(r.split_dir(name), part, metadata={**meta, "split": name})
    return {name: len(part) for name, part in parts.items()}


def _augment(r: _Run) -> dict[str, int]:
    from tfsynth.augment import augment_to_dir

    s = augment_to_dir(
        r.dataset("train"),
        r.config.augment,
        seed=r.seed,
        out=r.out / "augmented",
        preview=r.out / "figures" / "augment_preview.png",
    )
    return {"num_examples": s["num_examples"]}


def _unlabeled(r: _Run):
    """The --unlabeled images, loaded once (their labels, if any, only score D_pseudo)."""
    from tfsynth.data import load_dataset

    if "unlabeled" not in r.datasets:
        r.datasets["unlabeled"] = load_dataset(r.config.semi.unlabeled)
    return r.datasets["unlabeled"]


def _check_unlabeled(r: _Run, parts) -> None:
    """Bad --unlabeled data fails here, before anything is written (shapes, classes)."""
    from tfsynth.selfsup.pseudo import check_pair

    if r.config.semi.unlabeled:
        train = parts["train"] if parts is not None else r.dataset("train")
        check_pair(train, _unlabeled(r), "run --unlabeled (the training split)")


def _semi_stages(r: _Run, stages: _Stages) -> None:
    """With --unlabeled: the SSL encoder, then D_pseudo (a failed labelling is recorded)."""
    if not r.config.semi.unlabeled:
        return
    stages.run("ssl", (r.out / "ssl" / "summary.json").exists, lambda: _ssl(r))
    failed = "error" in stages.record.get("pseudo", {})
    stages.run("pseudo", lambda: failed or _pseudo_dir(r) is not None, lambda: _pseudo(r))


def _ssl(r: _Run) -> dict[str, Any]:
    from tfsynth.selfsup.pseudo import train_ssl_on

    s = train_ssl_on(
        r.dataset("train"),
        _unlabeled(r),
        r.config.semi.ssl_config(r.seed),
        r.out / "ssl",
        log=lambda line: r.log(f"  ssl: {line}"),
    )
    return {k: s[k] for k in ("num_examples", "epochs", "loss", "images_per_second")}


def _pseudo(r: _Run) -> dict[str, Any]:
    from tfsynth.selfsup import pseudo_label

    cfg = r.config.semi.pseudo_config(
        ssl=str(r.out / "ssl"), labeled=str(r.split_dir("train")), seed=r.seed
    )
    try:
        s = pseudo_label(cfg, r.out / "pseudo", labeled=r.dataset("train"), unlabeled=_unlabeled(r))
    except DataError as e:  # nothing confident enough: D' is chosen without D_pseudo
        r.log(f"  pseudo-labelling kept nothing ({e}); left out of D'")
        return {"error": str(e)}
    r.log(f"  kept {s['num_kept']} of {s['num_unlabeled']} unlabelled images")
    keys = ("num_unlabeled", "num_kept", "kept_fraction", "pseudo_label_accuracy")
    return {k: s[k] for k in keys if k in s}


def _pseudo_dir(r: _Run) -> str | None:
    """D_pseudo's directory, when this run made one."""
    path = r.out / "pseudo"
    return str(path) if (path / "manifest.json").is_file() else None


def _diffaugment(r: _Run) -> str | None:
    d = r.config.train.diffaugment
    if d == "auto":
        return DIFFAUGMENT_POLICY if len(r.dataset("train")) < DIFFAUGMENT_BELOW else None
    return d or None


def _check_dp(config: RunConfig, parts) -> None:
    """Plans each generator's DP training against the train split (ConfigError: one line).

    Run before anything is written, so a delta >= 1/n or an unreachable
    budget leaves no run directory; a resumed run was checked when it began.
    """
    t = config.train
    if t.dp is None or parts is None:
        return
    from tfsynth.privacy import plan_privacy

    n = len(parts["train"][: t.max_train_examples] if t.max_train_examples else parts["train"])
    for name in t.models:
        cfg = t.fit_config(name)
        plan_privacy(
            t.dp, model=name, num_examples=n, batch_size=cfg.batch_size, steps=cfg.steps,
            loss=cfg.loss, n_critic=cfg.n_critic, precision=cfg.precision,
        )  # fmt: skip


def _train(r: _Run, models) -> dict[str, Any]:
    from tfsynth.models import is_conditional
    from tfsynth.training import train

    t = r.config.train
    data = r.dataset("train")
    result: dict[str, Any] = {}
    for name in models:
        if (r.model_dir(name) / "model.keras").exists():
            continue
        cfg = t.fit_config(
            name,
            seed=r.seed,
            diffaugment=_diffaugment(r),
            select=t.select if is_conditional(name, data.num_classes) else "fid",
            eval_every=t.eval_every,
            dp=t.dp,
        )
        r.log(f"  training {name} for {cfg.steps} steps")
        # DP training keeps its last model: choosing a checkpoint on val would
        # be a data-dependent choice outside the accounted steps.
        val = None if t.dp is not None else r.dataset("val")
        s = train(data, cfg, out=r.model_dir(name), val=val, verbose=r.verbose).summary
        if s.get("generator_failed"):
            r.log(f"  {name} FAILED on validation: {s['generator_failed_reason']}")
        result[name] = {k: s.get(k) for k in ("steps", "images_per_second", "val_fid")}
    return result


def _train_summary(r: _Run, name: str) -> dict[str, Any]:
    return json.loads((r.model_dir(name) / "summary.json").read_text())


def _generate(r: _Run, models) -> dict[str, Any]:
    from tfsynth.generation import generate

    g = r.config.generate
    g = g.replace(num_examples=g.num_examples or len(r.dataset("train")), seed=r.seed)
    result = {}
    for name in models:
        if r.gen_dir(name).exists():
            continue
        # A failed generator's samples are not curated (the classifier would
        # reject them all); they stay out of D' and are evaluated as they are.
        failed = bool(_train_summary(r, name).get("generator_failed"))
        try:
            m = generate(r.model_dir(name), g, out=r.gen_dir(name), curate=g.curate and not failed)
        except DataError as e:  # curation cannot fill a class: keep the samples, not the model
            r.log(f"  {name}: curation failed ({e}); left out of D'")
            m = generate(r.model_dir(name), g, out=r.gen_dir(name), curate=False)
        result[name] = m["num_examples"]
    return result


def _usable_generators(r: _Run, models) -> dict[str, str]:
    """Generators that validation did not mark as failed and whose curation succeeded."""

    def usable(m: str) -> bool:
        if _train_summary(r, m).get("generator_failed"):
            return False
        gen = json.loads((r.gen_dir(m) / "summary.json").read_text())
        return not r.config.generate.curate or "kept_fraction" in gen

    return {m: str(r.model_dir(m) / "model.keras") for m in models if usable(m)}


def _search(r: _Run, models) -> dict[str, Any]:
    from tfsynth.fusion.search import search_figure, search_mix, write_hparams
    from tfsynth.io import atomic_directory
    from tfsynth.plotting import save_figure

    cfg = r.config
    if cfg.fuse.search:
        result = search_mix(
            r.dataset("train"),
            r.dataset("val"),
            aug_policy=cfg.augment.policy,
            generators=_usable_generators(r, models),
            test=r.dataset("test"),
            config=cfg.search_config(),
            seed=r.seed,
            class_target=cfg.fuse.class_target,
            log=r.log,
            pseudo=_pseudo_dir(r),
        )
    else:
        result = _fixed_mix(r, models)
    with atomic_directory(r.out / "search", overwrite=True) as tmp:
        if result["table"]:
            write_hparams(result, tmp / "tensorboard")
            save_figure(search_figure(result), tmp / "search.png")
        atomic_write_json(tmp / "search.json", result)
    chosen = result["table"][result["chosen"]]["label"] if result["table"] else "fixed"
    return {"chosen": chosen}


def _fixed_mix(r: _Run, models) -> dict[str, Any]:
    """No search: the configured ratios, with the first usable generator."""
    f = r.config.fuse
    gens = _usable_generators(r, models)
    fusion = {
        "aug_policy": r.config.augment.policy,
        "gen": next(iter(gens.values()), None),
        "ratios": f.ratios,
        "size": f.size,
        "min_confidence": r.config.generate.min_confidence if r.config.generate.curate else None,
        "seed": r.seed,
        "pseudo": _pseudo_dir(r),  # used where fuse.ratios names it
    }
    return {"table": [], "chosen": None, "chosen_fusion": fusion, "ladder": {}}


def _search_result(r: _Run) -> dict[str, Any]:
    return json.loads((r.out / "search" / "search.json").read_text())


def _chosen_generator(r: _Run) -> str:
    """The generator in the chosen mix, else the first usable one, else the first."""
    gen = _search_result(r)["chosen_fusion"].get("gen")
    models = r.config.train.models
    for m in models:
        if gen and Path(gen) == r.model_dir(m) / "model.keras":
            return m
    usable = _usable_generators(r, models)
    return next(iter(usable), models[0])


def _fuse(r: _Run) -> dict[str, Any]:
    from tfsynth.fusion import build_fused

    fusion = dict(_search_result(r)["chosen_fusion"])
    if fusion.get("gen") is None:
        fusion.pop("min_confidence", None)
    if fusion.get("ratios") and "aug" not in fusion["ratios"]:
        fusion.pop("aug_policy", None)
    fusion.setdefault("class_target", r.config.fuse.class_target)
    m = build_fused(
        real=str(r.split_dir("train")),
        num_shards=r.config.fuse.num_shards,
        out=r.out / "fused",
        **fusion,
    )
    return {"num_examples": m["num_examples"]}


def _evaluate(r: _Run) -> dict[str, Any]:
    from tfsynth.evaluation import evaluate_to_dir

    search = _search_result(r)
    known = {}
    if search["table"]:
        rows = search["table"]
        known = {
            "trtr": rows[0]["test_accuracy_runs"],
            "fused": rows[search["chosen"]]["test_accuracy_runs"],
        }
    s = evaluate_to_dir(
        r.dataset("train"),
        str(r.gen_dir(_chosen_generator(r))),
        r.dataset("test"),
        r.config.evaluate,
        out=r.out / "evaluation",
        fused=str(r.out / "fused"),
        utility_known=known or None,
        seed=r.seed,
    )
    return {"fid": s.get("fid"), "tstr_accuracy": s.get("tstr_accuracy")}


def _export(r: _Run) -> dict[str, str]:
    from tfsynth.export import export_generator

    name = _chosen_generator(r)
    path = export_generator(r.model_dir(name) / "model.keras", r.saved_models, name=r.out.name)
    return {"path": str(path), "model": name}
