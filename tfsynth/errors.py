"""Exceptions that tfsynth raises for bad input.

Every error a user can cause by pointing tfsynth at the wrong file or by
passing a wrong option is a `TfsynthError` whose message is one line that
names the file or field and what was expected. The CLI prints that line and
exits with status 2; anything else is a bug and keeps its traceback.
"""


class TfsynthError(Exception):
    """Base class for user-facing errors (bad data, bad config, bad options)."""


class DataError(TfsynthError, ValueError):
    """A dataset spec, file or array is missing, malformed or inconsistent."""


class ConfigError(TfsynthError, ValueError):
    """A configuration value or command-line option is invalid."""
