"""Reports: summary.json, report.md and report.html from one flat summary.

`write_report` turns the flat dict that `tfsynth.evaluation.evaluate`
returns (plus anything a caller adds, such as the `tfsynth run` pipeline's
training numbers) into three files in one directory:

- ``summary.json`` (through `tfsynth.summary.write_summary`),
- ``report.md`` and ``report.html``, built from the same list of blocks so
  they always agree. The HTML is one self-contained page (inline style, no
  scripts); figures are PNG files next to it, referenced by relative path,
  so the directory can be moved or zipped as a whole.

Unknown keys never break a report: known metrics get labelled tables, and
`sections` add free-form parts.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tfsynth.io import atomic_write_text
from tfsynth.summary import write_summary

# (key, label, what it means); the order is the order in the report.
DISTRIBUTION_ROWS = [
    ("fid", "FID", "Fréchet distance of feature Gaussians; lower is better, 0 = identical"),
    ("kid", "KID", "unbiased MMD² (cubic kernel), mean ± std over subsets; lower is better"),
    ("precision", "precision", "share of synthetic samples on the real manifold (k=3)"),
    ("recall", "recall", "share of real samples on the synthetic manifold (k=3)"),
    ("density", "density", "real k-NN balls per synthetic sample / k (k=5); ~1 when matched"),
    ("coverage", "coverage", "share of real k-NN balls holding a synthetic sample (k=5)"),
    ("fid_per_class_mean", "per-class FID (mean)", "FID within each class, averaged"),
]
UTILITY_ROWS = [
    ("trtr_accuracy", "TRTR", "train real, test real (baseline)"),
    ("tstr_accuracy", "TSTR", "train synthetic only, test real"),
    ("trts_accuracy", "TRTS", "train real, test synthetic (label agreement)"),
    ("real_only_accuracy", "D (real only)", "the real training set, test real"),
    ("fused_accuracy", "D' (fused)", "D' = real + synthetic (or the given fused set), test real"),
]
PRIVACY_ROWS = [
    ("dcr_synthetic_median", "DCR synthetic→train (median)", "distance to closest training image"),
    ("dcr_holdout_median", "DCR holdout→train (median)", "the same for unseen real images"),
    ("dcr_ratio", "DCR ratio", "synthetic / holdout median; < 1 = closer than new real data"),
    (
        "memorization_rate",
        "memorization rate",
        "share of synthetic closer than the 5th percentile of holdout DCR (real data: 0.05)",
    ),
    ("exact_copies", "exact copies", "synthetic samples identical to a training image"),
    (
        "mia_dcr_auc",
        "MIA AUC (DCR)",
        "members (train) vs holdout by distance to synthetic; 0.5 = none",
    ),
    (
        "mia_dcr_tpr_at_1_fpr",
        "MIA TPR @ 1% FPR (DCR)",
        "members caught at 1% false alarms; 0.01 = none",
    ),
    ("mia_density_auc", "MIA AUC (density ratio)", "p_synthetic / p_holdout-reference; 0.5 = none"),
    ("mia_density_tpr_at_1_fpr", "MIA TPR @ 1% FPR (density)", "the same at 1% false alarms"),
]
FIGURE_TITLES = {
    "samples": "Synthetic samples",
    "classes": "Synthetic samples per class",
    "real_classes": "Real samples per class",
    "nearest_neighbors": "Nearest-neighbour pairs (synthetic above, closest training image below)",
    "low_data_curve": "Low-data curve",
    "membership_roc": "Membership-inference ROC (members: training images; non-members: holdout)",
}

Block = tuple  # ("h", level, text) | ("p", text) | ("table", header, rows) | ("img", title, path)


def fmt(value: Any) -> str:
    """A short human-readable form of a summary value."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def fmt_pm(mean: float, std: float | None) -> str:
    """``mean ± std`` rounded to the spread: one significant digit of std.

    Example:

    >>> fmt_pm(0.9642, 9.428e-04), fmt_pm(6.7012, 0.24), fmt_pm(0.5, 0.0)
    ('0.964 ± 0.001', '6.7 ± 0.2', '0.5 ± 0')
    """
    import math

    if std is None or not math.isfinite(std):
        return fmt(mean)
    if std == 0:
        return f"{fmt(mean)} ± 0"
    digits = min(6, max(0, -round(math.log10(std))))
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _with_std(summary: Mapping[str, Any], key: str) -> str:
    std_key = "kid_std" if key == "kid" else f"{key}_std"
    if summary.get(std_key) is not None and summary.get(key) is not None:
        return fmt_pm(summary[key], summary[std_key])
    return fmt(summary.get(key))


def _metric_table(summary, rows) -> Block | None:
    body = [[label, _with_std(summary, key), note] for key, label, note in rows if key in summary]
    return ("table", ["metric", "value", "meaning"], body) if body else None


def low_data_figure(curve: Mapping[str, Mapping[str, Sequence[float]]], title: str | None = None):
    """Accuracy vs real training-set size, with and without synthetic data.

    `curve` is `tfsynth.evaluation.utility.low_data_curve(summary)`. Returns
    a matplotlib Figure (error bars are the std over seeds).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for kind, style in (("real", "o-"), ("real+synthetic", "s--")):
        if kind not in curve:
            continue
        c = curve[kind]
        ax.errorbar(c["sizes"], c["mean"], yerr=c["std"], fmt=style, capsize=3, label=kind)
    ax.set_xscale("log")
    sizes = sorted({n for c in curve.values() for n in c["sizes"]})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("real training examples")
    ax.set_ylabel("test accuracy (real)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title or "Low-data curve (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def _blocks(
    summary: Mapping[str, Any],
    figures: Mapping[str, str],
    sections: Sequence[tuple[str, Any]],
    title: str,
    lead: Sequence[Block] = (),
) -> list[Block]:
    """The report as a list of blocks, in reading order (see `Block`)."""
    return [
        ("h", 1, title),
        *lead,
        *_overview_blocks(summary),
        *_metric_blocks(summary),
        *_low_data_blocks(summary),
        *_per_class_blocks(summary),
        *_section_blocks(sections),
        *_figure_blocks(figures),
    ]


def _overview_blocks(s: Mapping[str, Any]) -> list[Block]:
    """What the metrics were computed on: the extractor and the set sizes."""
    blocks: list[Block] = []
    if "extractor" in s:
        acc = s.get("extractor_test_accuracy")
        blocks.append(
            (
                "p",
                f"Distribution metrics on **{s['extractor']}** features ({fmt(s.get('extractor_dim'))}-d"
                + (f"; classifier test accuracy {fmt(acc)}" if acc is not None else "")
                + f"): {fmt(s.get('num_synthetic_features'))} synthetic vs "
                f"{fmt(s.get('num_reference_features'))} real ({fmt(s.get('reference'))} split) samples.",
            )
        )
    counts = [
        (label, s[key])
        for key, label in (
            ("num_real", "real (train)"),
            ("num_synthetic", "synthetic"),
            ("num_test", "test (real, held out)"),
            ("num_fused", "D'"),
        )
        if key in s
    ]
    if counts:
        blocks.append(("table", ["set", "examples"], [[k, fmt(v)] for k, v in counts]))
    return blocks


def _metric_blocks(s: Mapping[str, Any]) -> list[Block]:
    """The Distribution, Utility and Privacy tables, each with its note."""
    blocks: list[Block] = []
    for heading, rows in (
        ("Distribution", DISTRIBUTION_ROWS),
        ("Utility", UTILITY_ROWS),
        ("Privacy", PRIVACY_ROWS),
    ):
        table = _metric_table(s, rows)
        if table is None:
            continue
        blocks.append(("h", 2, heading))
        if heading == "Utility" and "utility_seeds" in s:
            blocks.append(
                (
                    "p",
                    f"The fixed classifier recipe ({fmt(s.get('utility_epochs'))} epochs), mean ± std "
                    f"over seeds {fmt(s['utility_seeds'])}.",
                )
            )
        if heading == "Privacy" and "privacy_space" in s:
            blocks.append(("p", f"Distances in {s['privacy_space']} space."))
        if heading == "Privacy" and "privacy_guarantee" in s:
            blocks.append(("p", f"Privacy budget: {s['privacy_guarantee']}."))
        blocks.append(table)
    return blocks


def _low_data_blocks(s: Mapping[str, Any]) -> list[Block]:
    sizes = s.get("low_data_sizes")
    if not sizes:
        return []
    rows = [
        [str(n), _with_std(s, f"low_data.{n}.real"), _with_std(s, f"low_data.{n}.real+synthetic")]
        for n in sizes
    ]
    return [
        ("h", 2, "Low-data curve"),
        ("table", ["real examples", "real", "real + synthetic"], rows),
    ]


def _per_class_blocks(s: Mapping[str, Any]) -> list[Block]:
    per_class = [(k.split(".", 1)[1], v) for k, v in s.items() if k.startswith("fid_per_class.")]
    if not per_class:
        return []
    return [
        ("h", 2, "Per-class FID"),
        ("table", ["class", "FID"], [[name, fmt(v)] for name, v in per_class]),
    ]


def _section_blocks(sections: Sequence[tuple[str, Any]]) -> list[Block]:
    """Free-form parts: a mapping becomes a field/value table, anything else a paragraph."""
    blocks: list[Block] = []
    for heading, content in sections:
        blocks.append(("h", 2, heading))
        if isinstance(content, Mapping):
            blocks.append(
                ("table", ["field", "value"], [[str(k), fmt(v)] for k, v in content.items()])
            )
        else:
            blocks.append(("p", str(content)))
    return blocks


def _figure_blocks(figures: Mapping[str, str]) -> list[Block]:
    if not figures:
        return []
    return [("h", 2, "Figures")] + [
        ("img", FIGURE_TITLES.get(name, name), path) for name, path in figures.items()
    ]


def _markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "verdict":
            out.append("> " + b[1])
        elif b[0] == "table":
            esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
            lines = ["| " + " | ".join(map(esc, b[1])) + " |", "|" + "---|" * len(b[1])]
            lines += ["| " + " | ".join(map(esc, row)) + " |" for row in b[2]]
            out.append("\n".join(lines))
        elif b[0] == "img":
            out.append(f"**{b[1]}**\n\n![{b[1]}]({b[2]})")
    return "\n\n".join(out) + "\n"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
    "figure{margin:1em 0 2em}figcaption{font-weight:600;margin-bottom:.4em}"
    ".verdict{font-size:1.15em;padding:.8em 1em;border-radius:6px;border:1px solid}"
    ".verdict.good{background:#eaf6ea;border-color:#7bb37b}"
    ".verdict.bad{background:#fbeaea;border-color:#d08080}"
    ".verdict.warn{background:#fff6e0;border-color:#d8b060}"
)


def _inline(text: str) -> str:
    # The only inline markup the blocks use is **bold**.
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def _html(blocks: list[Block], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for b in blocks:
        if b[0] == "h":
            out.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "verdict":
            out.append(f'<p class="verdict {b[2]}">{_inline(b[1])}</p>')
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                for row in b[2]
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "img":
            cap = html.escape(b[1])
            out.append(
                f'<figure><figcaption>{cap}</figcaption><img src="{html.escape(b[2])}" alt="{cap}"></figure>'
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(
    out: str | os.PathLike,
    summary: Mapping[str, Any],
    figures: Mapping[str, str] | None = None,
    *,
    sections: Sequence[tuple[str, Any]] = (),
    command: str = "evaluate",
    title: str = "tfsynth evaluation report",
    lead: Sequence[Block] = (),
) -> dict[str, Path]:
    """Writes OUT_DIR/summary.json, report.md and report.html.

    Args:
        out: the run directory (figures' relative paths resolve here).
        summary: the flat summary (e.g. from `tfsynth.evaluation.evaluate`).
        figures: {name: path relative to out}; defaults to the
            summary's ``figures.<name>`` entries. Missing files are skipped.
        sections: extra (heading, text or {field: value}) parts, appended
            after the metric tables, e.g. a training section from `tfsynth run`.
        command: recorded in summary.json.
        title: the report title.
        lead: blocks placed right under the title (e.g. the verdict of
            `tfsynth run`): ("p", text), ("verdict", text, "good"|"bad"|"warn"),
            ("table", header, rows), ("img", title, path), ("h", level, text).

    Returns:
        {"summary": path, "markdown": path, "html": path}.

    Example:

    >>> import tempfile
    >>> paths = write_report(tempfile.mkdtemp(), {"fid": 1.5, "extractor": "demo"})
    >>> "FID" in paths["markdown"].read_text()
    True
    """
    out = Path(out)
    if figures is None:
        figures = {k.split(".", 1)[1]: v for k, v in summary.items() if k.startswith("figures.")}
    figures = {k: str(v) for k, v in figures.items() if (out / str(v)).is_file()}
    blocks = _blocks(summary, figures, list(sections), title, lead)
    paths = {"summary": write_summary(out, command, summary)}
    paths["markdown"] = atomic_write_text(out / "report.md", _markdown(blocks))
    paths["html"] = atomic_write_text(out / "report.html", _html(blocks, title))
    return paths


def show(out_dir: str | os.PathLike) -> None:
    """Displays a written report inline in a notebook: its tables, then its figures.

    report.md links figures relative to its own directory, which a notebook's
    Markdown cannot resolve, so the figures are shown as images.

    Example:

    >>> show("runs/quick")  # doctest: +SKIP
    """
    import re

    from IPython.display import Image, Markdown, display

    out_dir = Path(out_dir)
    text = (out_dir / "report.md").read_text()
    display(Markdown(text.partition("## Figures")[0]))
    for title, rel in re.findall(r"!\[(.*?)\]\((.*?)\)", text):
        display(Markdown(f"**{title}**"), Image(filename=str(out_dir / rel)))
