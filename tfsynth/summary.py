"""summary.json: the flat, machine-readable record every command writes."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tfsynth.io import atomic_write_json


def versions() -> dict[str, str]:
    """Versions of tfsynth and the libraries that decide its numbers."""
    import keras
    import numpy
    import tensorflow as tf

    import tfsynth

    return {
        "tfsynth": tfsynth.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested dicts into dotted keys: {"a": {"b": 1}} -> {"a.b": 1}.

    >>> flatten({"fid": 1.5, "config": {"lr": 0.1}})
    {'fid': 1.5, 'config.lr': 0.1}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def write_summary(out: str | os.PathLike, command: str, fields: Mapping[str, Any]) -> Path:
    """Writes OUT_DIR/summary.json with `fields` flattened plus versions and time."""
    record = {
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **flatten(fields),
        **flatten({"versions": versions()}),
    }
    path = Path(out) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, record)
