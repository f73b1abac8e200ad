"""Importing TensorFlow without its start-up noise.

TF_CPP_MIN_LOG_LEVEL does not cover the lines TensorFlow's C++ runtime prints
before its logging is set up (oneDNN notices, CUDA probing on machines with
no GPU), so while TensorFlow loads, file descriptor 2 points at /dev/null.
Users who set TF_CPP_MIN_LOG_LEVEL themselves get TensorFlow's logs as usual.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def stderr_silenced():
    """Points file descriptor 2 at /dev/null for the duration of the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor (some notebook kernels)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow (once), silencing its start-up logs unless asked for."""
    if "tensorflow" in sys.modules:
        return
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        import tensorflow  # noqa: F401  (the user chose the log level)

        return
    # 3 also hides C++ ERROR lines such as grappler's harmless "remapper failed";
    # real failures still surface as Python exceptions.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()  # probes CUDA now, while silenced
    tf.get_logger().setLevel("ERROR")
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)  # TFDS warns through absl
