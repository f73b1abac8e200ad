"""What every benchmark result records about where it ran: commit, CPU, load."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpuinfo(field: str) -> str | None:
    """The first /proc/cpuinfo line's value for `field` (None off Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


# One "AMD EPYC" name covers hosts with and without AVX-512, whose conv speed
# differs (classifier_loop.json vs classifier_loop_avx2.json): record the ISA.
_ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _cpu_flags() -> list[str]:
    have = set((_cpuinfo("flags") or "").split())
    return [f for f in _ISA_FLAGS if f in have]


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def machine_info() -> dict:
    """commit, cpu_model, its vector ISA flags, cpu_count and the 1/5/15-minute load averages."""
    return {
        "commit": _commit(),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
    }


def vm_hwm_mb() -> float:
    """Peak resident memory of this process so far (Linux /proc), in MB.

    VmHWM belongs to the address space, so a process started with fork + exec
    reports its own peak; ru_maxrss would carry the parent's peak over.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def fit_exponent(sizes, values) -> float:
    """b in values ~ a * sizes**b: the least-squares slope in log-log."""
    import numpy as np

    return float(
        np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(values, float)), 1)[0]
    )


def untrained_cgan(directory: str | os.PathLike) -> str:
    """Saves an untrained mnist-shaped cgan as DIRECTORY/model.keras; returns its path.

    Throughput benches sample it: its cost per image is a trained one's.
    """
    from tfsynth.models import build_model

    path = str(Path(directory) / "model.keras")
    model = build_model("cgan", (28, 28, 1), num_classes=10)
    model.compile()
    model.save(path)
    return path
