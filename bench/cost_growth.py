"""Cost growth of fuse and evaluate: time and peak memory against work size.

Reads the growth sweeps that `bench/fusion_throughput.py` (D' builds of
50k-1M images) and `bench/eval_throughput.py` (2k-50k samples per side)
measured, each size in a fresh process, and plots them on log-log axes
with each fitted exponent (b in cost ~ n**b) in the legend. It measures
nothing itself: rerun those two benches to refresh it.

    python bench/cost_growth.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import ROOT, fit_exponent  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SOURCES = {
    "fuse (images in D')": "fusion_throughput.json",
    "evaluate (samples per side; MB net of import)": "eval_throughput.json",
}


def growth_rows(results: Path = RESULTS) -> dict[str, dict]:
    """{label: {"n", "seconds", "peak_rss_mb", "commit"}} from the two results.

    For evaluate, peak_rss_mb is net of the process's memory before the metrics.
    """
    out = {}
    for label, name in SOURCES.items():
        d = json.loads((results / name).read_text())
        rows = d["growth"]["rows"]
        out[label] = {
            "n": [r["n"] for r in rows],
            "seconds": [r["seconds"] for r in rows],
            # evaluate records what TensorFlow's import left before the
            # metrics ran: its growth is the metrics' own memory.
            "peak_rss_mb": [
                max(r["peak_rss_mb"] - r.get("rss_before_metrics_mb", 0.0), 1.0) for r in rows
            ],
            "commit": d.get("machine", {}).get("commit", "unknown"),
        }
    return out


def figure(rows: dict[str, dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, r in rows.items():
        for ax, key in zip(axes, ("seconds", "peak_rss_mb")):
            b = fit_exponent(r["n"], r[key])
            ax.plot(r["n"], r[key], "o-", label=f"{label}: ~ n^{b:.2f}")
    for ax, ylabel in zip(axes, ("wall seconds", "peak RSS (MB, VmHWM)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("work size n")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("time")
    axes[1].set_title("memory")
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=RESULTS / "cost_growth.png")
    args = p.parse_args(argv)
    rows = growth_rows()
    print(f"{'what':<48}{'n':>10}{'seconds':>10}{'peak MB':>10}")
    for label, r in rows.items():
        for n, s, m in zip(r["n"], r["seconds"], r["peak_rss_mb"]):
            print(f"{label:<48}{n:>10}{s:>10.1f}{m:>10.0f}")
        bt, bm = fit_exponent(r["n"], r["seconds"]), fit_exponent(r["n"], r["peak_rss_mb"])
        print(f"{label:<48}{'exponent':>10}{bt:>10.2f}{bm:>10.2f}   (commit {r['commit'][:7]})")
    figure(rows).savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
