"""`BeamConfig`: how a build runs on Apache Beam, checked before anything is written.

Apache Beam is an optional extra (``pip install "tfsynth[beam]"``); this
module imports it only when a Beam build is asked for, and says in one
line how to install it when it is missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfsynth.errors import ConfigError

RUNNERS = ("local", "beam")
INSTALL = 'pip install "tfsynth[beam]" (or: pip install apache-beam)'


def require_beam():
    """The `apache_beam` module, or a ConfigError saying how to install it."""
    try:
        import apache_beam
    except ImportError:
        raise ConfigError(f"--runner beam needs Apache Beam: {INSTALL}") from None
    return apache_beam


def check_runner(runner: str, beam_options: str | None) -> None:
    """Checks the CLI's ``--runner`` and ``--beam-options`` pair.

    >>> check_runner("local", None)
    >>> check_runner("spark", None)
    Traceback (most recent call last):
    ...
    tfsynth.errors.ConfigError: --runner: expected local or beam, got 'spark'
    """
    if runner not in RUNNERS:
        raise ConfigError(f"--runner: expected {' or '.join(RUNNERS)}, got {runner!r}")
    if runner == "local" and beam_options:
        raise ConfigError("--beam-options: needs --runner beam")


@dataclass
class BeamConfig:
    """How a build runs on Apache Beam (see docs/beam.md).

    Args:
        options: Beam pipeline options as one shell-quoted string
            (``"--runner=DataflowRunner --project=P --region=R
            --temp_location=gs://B/tmp"``) or a list of flags. Empty: the
            DirectRunner in this process. The DirectRunner takes
            ``--direct_num_workers=N --direct_running_mode=multi_processing``.

    Example:

    >>> cfg = BeamConfig("--direct_num_workers=2 --direct_running_mode=multi_processing")
    >>> cfg.flags()
    ['--direct_num_workers=2', '--direct_running_mode=multi_processing']
    >>> BeamConfig.from_config(cfg.get_config()) == cfg
    True
    """

    options: str | Sequence[str] = ""

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BeamConfig:
        return cls(**config)

    def flags(self) -> list[str]:
        """The options as a list of flags; ConfigError when the string does not split."""
        if not isinstance(self.options, str):
            return [str(f) for f in self.options]
        try:
            return shlex.split(self.options)
        except ValueError as e:  # e.g. an unclosed quote
            raise ConfigError(f"--beam-options: {e} in {self.options!r}") from None

    def pipeline_options(self):
        """Beam's `PipelineOptions`, with every flag and the runner checked.

        Raises:
            ConfigError: one line for an unknown or malformed option, a value
                Beam refuses, or a runner it cannot create.
        """
        beam = require_beam()
        from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

        flags = self.flags()
        options = PipelineOptions(flags)
        _parse_strictly(options, flags)
        runner = options.view_as(StandardOptions).runner or "DirectRunner"
        try:
            beam.runners.create_runner(runner)
        except (ValueError, ImportError) as e:
            raise ConfigError(
                f"--beam-options: runner {runner!r}: {str(e).splitlines()[0]}"
            ) from None
        return options


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _parse_strictly(options, flags: list[str]) -> None:
    """Parses `options` as Beam will, turning its warnings and usage exits into one line.

    Beam drops flags it does not know with a logged warning (a typo would
    silently run with defaults) and exits through argparse on a bad value.
    """
    records = _Records()
    log = logging.getLogger("apache_beam.options.pipeline_options")
    log.addHandler(records)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            options.get_all_options(retain_unknown_options=False)
    except SystemExit:
        lines = [line for line in err.getvalue().splitlines() if "error:" in line]
        reason = lines[-1].split("error:", 1)[1].strip() if lines else "malformed"
        raise ConfigError(f"--beam-options: {reason}") from None
    finally:
        log.removeHandler(records)
    dropped = [m for m in records.messages if "unparseable" in m]
    if dropped:
        raise ConfigError(
            f"--beam-options: Beam does not know {dropped[0].split(':', 1)[1].strip()} "
            f"(expected --NAME=VALUE pipeline options) in {shlex.join(flags)!r}"
        )


__all__ = ["INSTALL", "RUNNERS", "BeamConfig", "check_runner", "require_beam"]
