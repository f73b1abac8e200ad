"""Does FID on label-free SSL features rank synthetic sets like FID on the domain classifier's?

1. Two extractors trained on mnist-10k[:6000]: the domain classifier (the
   default extractor, trained on the labels) and a `tfsynth ssl` encoder at
   the quick preset's size (`preset("quick").semi`, labels unused).
2. A ladder of corruptions of 2,000 real images no extractor saw
   (mnist-10k[6000:8000]): Gaussian noise and Gaussian blur at several
   levels, and mode drop of 1..5 classes (the dropped classes' images are
   replaced by images of the others, so every set has 2,000 images).
3. The FID of each set against 2,000 other real images (mnist-10k[8000:])
   on each extractor's features, and the Spearman rank correlation of the
   two FID lists (scipy.stats.spearmanr), over all sets and per family.

Prints a table and writes bench/results/ssl_ranking.json.

    python bench/ssl_ranking.py [--work /tmp/tfsynth-ssl-ranking]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _env import ROOT, machine_info  # noqa: E402

RESULT = ROOT / "bench" / "results" / "ssl_ranking.json"
NOISE = (0.05, 0.1, 0.2, 0.35)  # standard deviation, pixels in [0, 1]
BLUR = (0.5, 1.0, 1.5, 2.5)  # Gaussian sigma in pixels
DROP = (1, 2, 3, 4, 5)  # classes dropped
TARGET = 0.9


def ladder(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Name -> corrupted copy of `images` (uint8 NHWC), "clean" first."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    x = images.astype(np.float32) / 255.0
    sets = {"clean": images}
    for s in NOISE:
        noisy = x + rng.normal(0.0, s, x.shape).astype(np.float32)
        sets[f"noise {s:g}"] = _uint8(noisy)
    for s in BLUR:
        sets[f"blur {s:g}"] = _uint8(gaussian_filter(x, sigma=(0, s, s, 0)))
    order = rng.permutation(10)
    for k in DROP:
        keep = np.flatnonzero(~np.isin(labels, order[:k]))
        sets[f"drop {k}"] = images[np.sort(rng.choice(keep, len(images), replace=True))]
    return sets


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def _family(name: str) -> str:
    return name.split()[0]


def _extractors(work: Path):
    """(domain extractor, SSL extractor, seconds each); the SSL run is reused from `work`."""
    from tfsynth.config import preset
    from tfsynth.data import load_dataset
    from tfsynth.evaluation.features import domain_extractor, ssl_extractor
    from tfsynth.selfsup import train_ssl

    t = time.perf_counter()
    domain = domain_extractor(load_dataset("mnist-10k[:6000]"), cache_dir=work / "cache")
    seconds = {"domain": round(time.perf_counter() - t, 1)}
    cfg = preset("quick").semi.ssl_config(seed=0)
    cfg.data = "mnist-10k[:6000]"
    t = time.perf_counter()
    if not (work / "ssl" / "summary.json").is_file():
        train_ssl(cfg, work / "ssl", data=load_dataset(cfg.data, unlabeled=True), log=print)
    seconds["ssl"] = round(time.perf_counter() - t, 1)
    return domain, ssl_extractor(work / "ssl"), seconds, cfg.to_dict()


def spearman(a, b) -> dict[str, float]:
    from scipy.stats import spearmanr

    r = spearmanr(a, b)
    return {"rho": float(r.statistic), "p_value": float(r.pvalue), "n": len(a)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/tfsynth-ssl-ranking")
    ap.add_argument("--out", default=str(RESULT))
    args = ap.parse_args()
    from tfsynth.data import load_dataset
    from tfsynth.evaluation.distribution import fid

    machine = machine_info()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    domain, ssl, seconds, ssl_config = _extractors(work)
    base, ref = load_dataset("mnist-10k[6000:8000]"), load_dataset("mnist-10k[8000:]")
    sets = ladder(base.images, base.labels)
    t = time.perf_counter()
    ref_f = {"domain": domain(ref.images), "ssl": ssl(ref.images)}
    rows = []
    for name, images in sets.items():
        row = {"set": name, "family": _family(name)}
        for kind, ext in (("domain", domain), ("ssl", ssl)):
            row[f"fid_{kind}"] = fid(ref_f[kind], ext(images))
        rows.append(row)
    seconds["fids"] = round(time.perf_counter() - t, 1)
    overall = spearman([r["fid_domain"] for r in rows], [r["fid_ssl"] for r in rows])
    per_family = {}
    for fam in ("noise", "blur", "drop"):
        sub = [r for r in rows if r["family"] in (fam, "clean")]
        per_family[fam] = spearman([r["fid_domain"] for r in sub], [r["fid_ssl"] for r in sub])
    print("| set | FID (domain classifier) | FID (SSL encoder) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['fid_domain']:.2f} | {r['fid_ssl']:.2f} |")
    print(f"\nSpearman rho over {overall['n']} sets: {overall['rho']:.3f} "
          f"(p {overall['p_value']:.2g}; target >= {TARGET})")  # fmt: skip
    for fam, s in per_family.items():
        print(f"  {fam} (with clean): rho {s['rho']:.3f} over {s['n']} sets")
    result = {
        "benchmark": "ssl_ranking",
        "setup": __doc__.split("\n\n")[1],
        "machine": machine,
        "load_average_at_save": machine_info()["load_average"],
        "ssl_config": ssl_config,
        "domain_extractor": domain.info(),
        "seconds": seconds,
        "rows": rows,
        "spearman": overall,
        "spearman_per_family": per_family,
        "goal": {"rho": TARGET, "met": overall["rho"] >= TARGET},
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
