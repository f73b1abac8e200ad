"""The report of `tfsynth run`: a verdict first, then the evidence.

The page leads with the answer a user came for (does D' train a better
classifier than D on the held-out test split?), what each source adds,
which mix the validation split chose and why, and warnings; then the
search figure, the generator's samples and the metric tables of
`tfsynth.report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tfsynth.config import RunConfig
from tfsynth.evaluation.evaluate import HEADLINE
from tfsynth.report import fmt_pm

# Curation keeping less than this share of a class's candidates is a warning.
LOW_KEPT_FRACTION = 0.5
# Real held-out data has this memorization rate by construction (5th percentile).
MEMORIZATION_EXPECTED = 0.05
FAMILY_LABELS = {
    "D": "D (real only)",
    "D+aug": "D + augmentation",
    "D+gen": "D + generated",
    "D+aug+gen": "D + augmentation + generated",
    "D+pseudo": "D + pseudo-labelled",
    "D+aug+pseudo": "D + augmentation + pseudo-labelled",
    "D+gen+pseudo": "D + generated + pseudo-labelled",
    "D+aug+gen+pseudo": "D + augmentation + generated + pseudo-labelled",
}


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _pm(row: dict[str, Any], split: str) -> str:
    return fmt_pm(row[f"{split}_accuracy"], row.get(f"{split}_accuracy_std"))


def verdict(search: dict[str, Any]) -> tuple[str, str]:
    """(one sentence, "good" | "bad" | "warn") about D' vs D on the test split."""
    rows = search.get("table") or []
    if not rows or "test_accuracy" not in rows[0]:
        return "No search of the mix was run: D vs D' is in the utility table.", "warn"
    d, dp = rows[0], rows[search["chosen"]]
    if search["chosen"] == 0:
        return (
            f"D' = D: no synthetic mix beat real only on validation, so D' is the real data "
            f"(test accuracy {_pm(d, 'test')}).",
            "warn",
        )
    gain = dp["test_accuracy"] - d["test_accuracy"]
    # A gap inside the seeds' spread is a tie, whichever its sign.
    spread = max(d.get("test_accuracy_std") or 0.0, dp.get("test_accuracy_std") or 0.0)
    outcome, kind = ("ties", "warn") if abs(gain) <= spread else (
        ("beats", "good") if gain > 0 else ("does not beat", "bad")
    )  # fmt: skip
    tail = ", inside the seed spread" if kind == "warn" else ""
    return (
        f"D' {outcome} D on the test split: "
        f"{_pm(dp, 'test')} vs {_pm(d, 'test')} ({gain * 100:+.1f} points{tail}), "
        f"with {dp['label']}.",
        kind,
    )


def _ladder_table(search: dict[str, Any]) -> tuple | None:
    rows, ladder = search.get("table") or [], search.get("ladder") or {}
    if not rows or "test_accuracy" not in rows[0]:
        return None
    base = rows[0]["test_accuracy"]
    body = []
    for family in FAMILY_LABELS:
        if family not in ladder:
            continue
        r = rows[ladder[family]]
        body.append(
            [
                FAMILY_LABELS[family],
                r["label"],
                _pm(r, "val"),
                _pm(r, "test"),
                f"{(r['test_accuracy'] - base) * 100:+.1f}",
            ]
        )
    header = [
        "sources",
        "best mix on validation",
        "val accuracy",
        "test accuracy",
        "Δ test (points)",
    ]
    return ("table", header, body)


def _why(search: dict[str, Any]) -> str:
    rows = search.get("table") or []
    if not rows:
        return ""
    dp = rows[search["chosen"]]
    seeds = search.get("config", {}).get("seeds")
    return (
        f"**Chosen mix: {dp['label']}** — the highest mean validation accuracy of "
        f"{len(rows)} candidates ({_pm(dp, 'val')} vs real only {_pm(rows[0], 'val')}; "
        f"{seeds} classifier seeds each, all trained with the step budget of the real data). "
        "Equal accuracies are separated by validation cross-entropy; real only is always a "
        "candidate and wins exact ties; the test split chose nothing."
    )


def warnings(
    summary: dict[str, Any], trains: dict[str, dict], gens: dict[str, dict], search=None
) -> list[str]:
    """One line per problem a user should know about before using D'."""
    out = [
        f"Mix {r['label']} could not be built and was skipped: {r['error']}"
        for r in (search or {}).get("table", [])
        if "error" in r
    ]
    for name, t in trains.items():
        if t.get("generator_failed"):
            out.append(
                f"Generator {name} failed and was left out of D': {t['generator_failed_reason']}."
            )
    for name, g in gens.items():
        prefix = "kept_fraction_per_class."
        low = {
            k.removeprefix(prefix): f
            for k, f in g.items()
            if k.startswith(prefix) and f < LOW_KEPT_FRACTION
        }
        if low:
            classes = ", ".join(f"{c} ({f:.0%} kept)" for c, f in low.items())
            out.append(f"The classifier mostly rejects {name}'s samples of class {classes}.")
    if "pseudo.error" in summary:
        out.append(
            f"Pseudo-labelling kept nothing; D' was chosen without D_pseudo: {summary['pseudo.error']}"
        )
    rate = summary.get("memorization_rate")
    if rate is not None and rate > 2 * MEMORIZATION_EXPECTED:
        out.append(
            f"Memorization: {rate:.1%} of synthetic samples are closer to a training image than "
            f"95% of held-out real images are ({MEMORIZATION_EXPECTED:.0%} expected)."
        )
    return out


def _lead(out: Path, summary, search, trains, gens) -> list[tuple]:
    text, kind = verdict(search)
    lead: list[tuple] = [("verdict", text, kind)]
    table = _ladder_table(search)
    if table is not None:
        lead += [("h", 2, "What each source adds (test split)"), table, ("p", _why(search))]
    warn = warnings(summary, trains, gens, search)
    lead.append(("h", 2, "Warnings"))
    lead += [("p", w) for w in warn] or [("p", "None.")]
    if (out / "search" / "search.png").is_file():
        lead.append(
            (
                "img",
                "The search of the mix (validation chooses; test reported)",
                "search/search.png",
            )
        )
    return lead


def write_run_report(out: Path, config: RunConfig, stages: dict, wall: float) -> dict[str, Any]:
    """Writes OUT/summary.json, report.md and report.html; returns the summary."""
    from tfsynth.fusion.search import flat_summary
    from tfsynth.report import write_report

    ev = _read(out / "evaluation" / "summary.json")
    search = _read(out / "search" / "search.json")
    models = config.train.models
    trains = {m: _read(out / "models" / m / "summary.json") for m in models}
    gens = {m: _read(out / "generated" / m / "summary.json") for m in models}
    summary: dict[str, Any] = {k: ev[k] for k in HEADLINE if k in ev}
    text, kind = verdict(search)
    summary.update(verdict=text, verdict_kind=kind)
    if search.get("table"):
        summary.update(flat_summary(search))
        keep = ("label", "family", "num_examples", "val_accuracy", "val_accuracy_std",
                "test_accuracy", "test_accuracy_std")  # fmt: skip
        summary["search_table"] = [{k: r[k] for k in keep if k in r} for r in search["table"]]
    summary.update(_run_fields(out, config, stages, wall, trains, gens))
    for k, v in ev.items():
        if k not in summary and not k.startswith(("figures.", "versions.", "command", "created")):
            summary[k] = v
    summary["config"] = config.to_dict()
    figures = _figures(out, ev, stages)
    lead = _lead(out, summary, search, trains, gens)
    stage_times = {k: fmt_seconds(v["seconds"]) for k, v in stages.items() if "seconds" in v}
    privacy = privacy_section(config, trains)
    summary["privacy_budget"] = privacy["budget"]
    write_report(
        out,
        summary,
        figures,
        command="run",
        title=f"tfsynth run: {config.data.spec}, {config.train.model}, preset {config.preset}",
        lead=lead,
        sections=[("Privacy", privacy), ("Stage times", stage_times)],
    )
    return json.loads((out / "summary.json").read_text())


def privacy_section(config: RunConfig, trains: dict[str, dict]) -> dict[str, str]:
    """The report's privacy rows: the budget asked for and each generator's spent one."""
    dp = config.train.dp
    if dp is None:
        return {"budget": "no formal guarantee (trained without DP-SGD)"}
    target = "none (noise multiplier given)" if dp.epsilon is None else f"{dp.epsilon:g}"
    rows = {"budget": f"epsilon {target}, delta {dp.delta:g} per generator (DP-SGD)"}
    for m, t in trains.items():
        if "dp_epsilon" in t:
            rows[m] = f"({t['dp_epsilon']:.3g}, {t['dp_delta']:g})-DP after {t['steps']} steps"
    # D' holds the real training images and evaluation reads them: only the
    # generators and what they generate are covered.
    rows["covers"] = "the generators and their samples, not D' (it holds the real images)"
    return rows


def _run_fields(out, config, stages, wall, trains, gens) -> dict[str, Any]:
    split = stages.get("split", {})
    fields: dict[str, Any] = {
        "wall_seconds": round(wall, 2),
        "stage_seconds_total": round(sum(s.get("seconds", 0) for s in stages.values()), 2),
        "data": config.data.spec,
        "model": config.train.model,
        "preset": config.preset,
        "seed": config.seed,
        "num_train": split.get("train"),
        "num_val": split.get("val"),
        "num_test": split.get("test"),
        "num_augmented": stages.get("augment", {}).get("num_examples"),
        "num_fused": stages.get("fuse", {}).get("num_examples"),
        "export_path": stages.get("export", {}).get("path"),
        "exported_model": stages.get("export", {}).get("model"),
        "report": str(out / "report.html"),
    }
    for m in trains:
        t, g = trains[m], gens[m]
        for k in ("steps", "images_per_second", "val_fid", "val_label_agreement", "val_best_step"):
            if k in t:
                fields[f"train.{m}.{k}"] = t[k]
        fields[f"train.{m}.failed"] = bool(t.get("generator_failed"))
        if "kept_fraction" in g:
            fields[f"generate.{m}.kept_fraction"] = g["kept_fraction"]
            fields[f"generate.{m}.num_examples"] = g.get("num_examples")
    for k, v in stages.get("pseudo", {}).items():  # with --unlabeled: kept, accuracy, error
        if k not in ("seconds", "finished", "skipped_runs"):
            fields[f"pseudo.{k}"] = v
    for k, v in stages.items():
        if "seconds" in v:
            fields[f"stage_seconds.{k}"] = v["seconds"]
    return fields


def _figures(out: Path, ev: dict[str, Any], stages: dict) -> dict[str, str]:
    figures = {}
    model = stages.get("export", {}).get("model")
    if model and (out / "models" / model / "samples" / "final.png").is_file():
        figures["generator_samples"] = f"models/{model}/samples/final.png"
    figures.update(
        {
            k.removeprefix("figures."): f"evaluation/{v}"
            for k, v in ev.items()
            if k.startswith("figures.")
        }
    )
    if (out / "figures" / "augment_preview.png").exists():
        figures["augment_preview"] = "figures/augment_preview.png"
    return figures


def fmt_seconds(seconds: float) -> str:
    """Stage times with their unit."""
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
