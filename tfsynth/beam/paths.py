"""Where a Beam build may write: the output path's file system, checked first.

Workers and the launcher must reach the same directory. Today the staging
and merge steps rename directories with `os.replace`, so the output must
be a local or mounted path (a bucket mounted with gcsfuse, an NFS share);
a URL is refused in one line, naming whether TensorFlow has its file
system at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfsynth.errors import ConfigError


def local_output(out: str | os.PathLike) -> Path:
    """`out` as a local Path, or a ConfigError for a URL.

    >>> local_output("runs/fused")
    PosixPath('runs/fused')
    >>> local_output("nosuchfs://bucket/fused")
    Traceback (most recent call last):
    ...
    tfsynth.errors.ConfigError: --out nosuchfs://bucket/fused: TensorFlow has no file system for nosuchfs://
    """
    text = os.fspath(out)
    scheme, sep, _ = text.partition("://")
    if not sep:
        return Path(text)
    import tensorflow as tf

    try:
        tf.io.gfile.exists(text)
    except tf.errors.UnimplementedError:
        raise ConfigError(f"--out {text}: TensorFlow has no file system for {scheme}://") from None
    except tf.errors.OpError:
        pass  # e.g. no network or credentials: the scheme exists, which is all we ask here
    raise ConfigError(
        f"--out {text}: the beam runner writes local or mounted paths only ({scheme}:// "
        "directories cannot be renamed in one step); mount the bucket (e.g. gcsfuse) and "
        "pass the mount's path"
    )


__all__ = ["local_output"]
