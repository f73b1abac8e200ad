"""Atomic file and directory writes.

tfsynth never leaves a half-written result where a finished one is
expected: everything is written under a temporary name in the same
directory and renamed into place, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def os_error_message(e: OSError) -> str:
    """One line for an OSError: the path it names and what went wrong.

    Example:

    >>> os_error_message(PermissionError(13, "Permission denied", "out/a.npz"))
    'out/a.npz: Permission denied'
    """
    reason = e.strerror or str(e) or type(e).__name__
    if e.filename is None:
        return reason
    name = os.fsdecode(e.filename)
    if isinstance(e, FileExistsError) and os.path.exists(name) and not os.path.isdir(name):
        # What `mkdir(parents=True)` raises when a directory on the way is a file.
        reason = "exists and is not a directory"
    if e.filename2 is not None:
        return f"{name} -> {os.fsdecode(e.filename2)}: {reason}"
    return f"{name}: {reason}"


# Errors of a failed write that name no file; they are reported with the output's path.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def _raise_with_path(e: OSError, path: Path) -> None:
    """Re-raises `e`, naming `path` when `e` is a failed write that names no file."""
    if e.filename is None and e.errno in _WRITE_ERRNOS:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    raise e


def make_parent(path: str | os.PathLike) -> Path:
    """Creates the missing parent directories of `path` (as `mkdir -p`).

    Raises:
        NotADirectoryError: naming `path` and the ancestor that is a file.
        PermissionError (and other OSErrors): naming the directory.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        ancestor = next(
            (p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None
        )
        if ancestor is None:
            raise
        raise NotADirectoryError(
            errno.ENOTDIR, f"cannot create it: {ancestor} is not a directory", str(path)
        ) from None
    return path


def check_can_create(path: str | os.PathLike) -> None:
    """Raises the OSError that creating `path` would raise, before any work is done.

    Checks the nearest existing ancestor of a new `path`: it must be a
    directory that this process may write. An existing `path` is not checked
    (a resumed or overwritten output; writing it reports its own errors).

    Raises:
        NotADirectoryError / PermissionError: naming `path` and the ancestor.
    """
    path = Path(path)
    if path.exists():
        return
    for ancestor in [path.parent, *path.parent.parents]:
        if not ancestor.exists():
            continue
        if not ancestor.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, f"cannot create it: {ancestor} is not a directory", str(path)
            )
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(
                errno.EACCES, f"cannot create it: {ancestor} is not writable", str(path)
            )
        return


def _tmp_sibling(path: Path, kind: str) -> Path:
    make_parent(path)
    try:
        if kind == "dir":
            return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    except OSError as e:  # e.g. no write permission: name the output, not the temporary
        raise OSError(e.errno, e.strerror, str(path)) from e
    os.close(fd)
    return Path(name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` through a temporary file and a rename."""
    path = Path(path)
    tmp = _tmp_sibling(path, "file")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        _raise_with_path(e, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    # NumPy scalars and arrays appear in metrics; JSON has no type for them.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def to_json(obj: Any) -> str:
    """Serializes `obj` to indented JSON, converting NumPy values."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes `obj` as JSON to `path` atomically."""
    return atomic_write_text(path, to_json(obj))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary directory that becomes `path` when the block succeeds.

    On an exception the temporary directory is removed and `path` is left as
    it was. If `path` exists, it is replaced only when `overwrite` is true.

    Example:

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_directory(root / "out") as tmp:
    ...     _ = (tmp / "a.txt").write_text("hi")
    >>> (root / "out" / "a.txt").read_text()
    'hi'
    """
    from tfsynth.errors import DataError

    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"{path}: already exists; choose another --out or remove it")
    tmp = _tmp_sibling(path, "dir")
    try:
        yield tmp
        if path.exists():
            # Move the old result aside first so that a crash between the two
            # renames still leaves one complete directory on disk.
            old = _tmp_sibling(path, "dir")
            old.rmdir()
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_with_path(e, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
