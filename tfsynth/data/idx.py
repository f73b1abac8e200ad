"""Reading and writing the IDX format used by MNIST.

An IDX file is a big-endian header (two zero bytes, a type code, the number
of dimensions, then one uint32 per dimension) followed by the array data.
Files may be gzip-compressed. See http://yann.lecun.com/exdb/mnist/.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from tfsynth.errors import DataError

# IDX type codes -> big-endian NumPy dtypes.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: expected an IDX file, found a directory") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


# What a MNIST-style file of each kind holds: its number of dimensions.
_KIND_NDIM = {"images": 3, "labels": 1}


def _check_magic(path: Path, data: bytes, kind: str | None) -> tuple[int, int]:
    """Checks the 4-byte magic number; returns (type code, number of dimensions)."""
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = f"0x{int.from_bytes(data[:4], 'big'):08x}"
    what = "an IDX file" if kind is None else f"an IDX {kind} file"
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise DataError(f"{path}: not {what} (bad magic number {magic})")
    if kind is not None and ndim != _KIND_NDIM[kind]:
        want = _KIND_NDIM[kind]
        raise DataError(
            f"{path}: not {what} (magic number {magic}: a {ndim}-D array; "
            f"{kind} files are {want}-D, e.g. 0x0000080{want})"
        )
    return code, ndim


def read_idx(path: str | os.PathLike, kind: str | None = None) -> np.ndarray:
    """Reads an IDX file (optionally gzip-compressed) into a NumPy array.

    Args:
        path: the file.
        kind: "images" or "labels" to require the magic number of a MNIST
            images (3 dimensions) or labels (1 dimension) file, so that a
            wrong file is named as such before its sizes are compared.

    Raises:
        DataError: if the file is missing, has a bad header (or the wrong
            kind), or is truncated.

    Example:

    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte")
    >>> _ = write_idx(p, np.arange(3, dtype=np.uint8))
    >>> read_idx(p)
    array([0, 1, 2], dtype=uint8)
    """
    if kind is not None and kind not in _KIND_NDIM:
        raise ValueError(f"kind: expected 'images', 'labels' or None, got {kind!r}")
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    code, ndim = _check_magic(path, data, kind)
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, need {header_len})")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = len(data) - header_len
    if body < expected:
        raise DataError(
            f"{path}: truncated IDX data: header says {dims} ({expected} bytes), found {body} bytes"
        )
    if body > expected:
        raise DataError(
            f"{path}: corrupt IDX file: {body - expected} unexpected bytes after the {dims} array"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header_len, count=int(np.prod(dims)))
    return arr.reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Writes `array` as an IDX file; gzip-compresses when the name ends in `.gz`."""
    from tfsynth.io import atomic_write_bytes

    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}")
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    return atomic_write_bytes(path, payload)
