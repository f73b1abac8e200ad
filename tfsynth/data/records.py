"""The tfsynth dataset directory: sharded TFRecord files plus manifest.json.

Every command that writes images (`data convert`, `augment`, `generate`,
`fuse`) writes this format, and `load_dataset(DIR)` streams it back. Each
example is a `tf.train.Example` with

- ``image``: the raw uint8 HWC bytes,
- ``label``: int64,
- any extra columns declared in the manifest (provenance such as ``source``
  and ``source_index``, or ``soft_label`` for MixUp/CutMix).

The manifest records the shape, class names, counts per class, the extra
columns and, per shard, the example count and a SHA-256 checksum. Shards are
written under a temporary name and renamed, so a shard file that exists is
complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.errors import DataError

FORMAT = "tfsynth-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_DTYPES = ("int64", "float32", "string")


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a directory holding a tfsynth manifest.json."""
    return (Path(path) / MANIFEST).is_file()


def shard_name(index: int, num_shards: int) -> str:
    return f"data-{index:05d}-of-{num_shards:05d}.tfrecord"


def feature_spec_of(columns: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Infers the manifest feature spec of extra columns from example arrays."""
    spec = {}
    for name, arr in columns.items():
        arr = np.asarray(arr)
        if arr.dtype.kind in "iub":
            dtype = "int64"
        elif arr.dtype.kind == "f":
            dtype = "float32"
        elif arr.dtype.kind in "SUO":
            dtype = "string"
        else:
            raise DataError(f"column {name!r}: unsupported dtype {arr.dtype}")
        spec[name] = {"dtype": dtype, "shape": list(arr.shape[1:])}
    return spec


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values take 10 bytes (two's complement)."""
    n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    # A length-delimited protobuf field: tag byte, varint length, payload.
    return bytes((tag,)) + _varint(len(payload)) + payload


def _entry(key: str, feature_payload: bytes) -> bytes:
    # One Features.feature map entry: {key: 1, value: 2 -> Feature}.
    return _field(0x0A, _field(0x0A, key.encode()) + _field(0x12, feature_payload))


def _int64_feature(values) -> bytes:
    packed = b"".join(_varint(int(v)) for v in values)
    return _field(0x1A, _field(0x0A, packed) if packed else b"")


def _float_feature(values: np.ndarray) -> bytes:
    packed = np.asarray(values, "<f4").tobytes()
    return _field(0x12, _field(0x0A, packed) if packed else b"")


def _bytes_feature(values) -> bytes:
    return _field(0x0A, b"".join(_field(0x0A, v) for v in values))


def _int64_scalar_entries(name: str, values: np.ndarray) -> list[bytes]:
    """Map entries of a scalar int64 column, with the varints built in NumPy.

    An entry is a fixed head (which depends only on the varint's length)
    followed by the varint, so the per-example Python work is one slice.
    """
    v = np.asarray(values).astype(np.int64).view(np.uint64)
    n = len(v)
    groups = np.empty((n, 10), np.uint8)
    rest = v.copy()
    for j in range(10):
        groups[:, j] = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= np.uint64(7)
    nonzero = groups != 0
    lengths = np.where(nonzero.any(1), 10 - np.argmax(nonzero[:, ::-1], axis=1), 1)
    groups[np.arange(10)[None, :] < (lengths - 1)[:, None]] |= 0x80
    heads = {k: _entry(name, _int64_feature((1 << (7 * (k - 1)),)))[:-k] for k in range(1, 11)}
    raw = groups.tobytes()
    return [heads[k] + raw[10 * i : 10 * i + k] for i, k in enumerate(lengths.tolist())]


def _as_bytes(v) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


def _column_entries(name: str, column: np.ndarray, dtype: str, n: int) -> list[bytes]:
    """Encoded map entries of one column for `n` examples.

    Scalar int and string columns (labels, provenance) repeat a few values
    many times, so their entries are cached per value.
    """
    column = np.asarray(column)
    flat = column.reshape(n, -1)
    scalar = flat.shape[1] == 1
    if dtype == "float32":
        return [_entry(name, _float_feature(row)) for row in flat]
    if dtype == "int64":
        if not scalar:
            return [_entry(name, _int64_feature(row)) for row in flat.astype(np.int64)]
        return _int64_scalar_entries(name, flat[:, 0])
    else:
        if not scalar:
            return [_entry(name, _bytes_feature([_as_bytes(v) for v in row])) for row in flat]
        encode = lambda v: _entry(name, _bytes_feature((_as_bytes(v),)))  # noqa: E731
        values = flat[:, 0].tolist()
    cache: dict = {}
    out = []
    for v in values:
        e = cache.get(v)
        if e is None:
            e = encode(v)
            if len(cache) < 4096:
                cache[v] = e
        out.append(e)
    return out


def serialize_examples(
    batch: Mapping[str, np.ndarray], features: Mapping[str, Mapping]
) -> list[bytes]:
    """Serializes a batch dict (image, label, extras) to tf.train.Example bytes.

    The protobuf wire format is written directly rather than through
    `tf.train.Example` objects, which were the bottleneck of streaming
    writes (bench/results/design_measurements.md). The
    bytes parse as the same `tf.train.Example`; features are written in a
    fixed order (image, label, then the declared columns), so the output is
    deterministic.
    """
    images = np.ascontiguousarray(batch["image"], dtype=np.uint8)
    n = len(images)
    if n == 0:
        return []
    size = images[0].nbytes
    # The image entry's framing depends only on the image size: build it once.
    image_head = _entry("image", _field(0x0A, _field(0x0A, b"\0" * size)))[:-size]
    flat = images.reshape(n, size)
    columns = [[image_head + flat[i].tobytes() for i in range(n)]]
    columns.append(_column_entries("label", batch["label"], "int64", n))
    for name, spec in features.items():
        columns.append(_column_entries(name, batch[name], spec["dtype"], n))
    out = []
    for parts in zip(*columns):
        body = b"".join(parts)
        out.append(b"\x0a" + _varint(len(body)) + body)
    return out


def write_shard(
    path: str | os.PathLike,
    batches: Iterable[Mapping[str, np.ndarray]],
    features: Mapping[str, Mapping] | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Writes one TFRecord shard atomically; returns its manifest entry.

    The entry holds the file name, example count, SHA-256 and per-class
    counts (when `num_classes` is given).
    """
    import tensorflow as tf

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    count = 0
    class_counts = np.zeros(num_classes or 0, np.int64)
    try:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for batch in batches:
                for record in serialize_examples(batch, features or {}):
                    writer.write(record)
                count += len(batch["label"])
                if num_classes:
                    class_counts += np.bincount(batch["label"], minlength=num_classes)[:num_classes]
        with open(tmp, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    entry = {"file": path.name, "num_examples": count, "sha256": digest.hexdigest()}
    if num_classes:
        entry["class_counts"] = class_counts.tolist()
    return entry


def make_manifest(
    *,
    name: str,
    shape: Sequence[int],
    class_names: Sequence[str],
    shards: Sequence[Mapping[str, Any]],
    features: Mapping[str, Mapping] | None = None,
    metadata: Mapping[str, Any] | None = None,
    labeled: bool = True,
) -> dict[str, Any]:
    """Builds the manifest dict for a set of finished shards.

    An unlabelled dataset (`labeled` False) has no class names and the key
    ``"labeled": false``; manifests without the key are labelled.
    """
    counts = np.zeros(len(class_names), np.int64)
    for s in shards:
        if "class_counts" in s:
            counts += np.asarray(s["class_counts"], np.int64)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "shape": [int(d) for d in shape],
        "class_names": [str(c) for c in class_names],
        "num_examples": int(sum(s["num_examples"] for s in shards)),
        "class_counts": counts.tolist(),
        "features": dict(features or {}),
        "shards": list(shards),
        "metadata": dict(metadata or {}),
    }
    if not labeled:
        manifest["labeled"] = False
    return manifest


def write_dataset_dir(
    out: str | os.PathLike,
    dataset,
    *,
    examples_per_shard: int = 10_000,
    batch_size: int = 512,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Writes an `ImageDataset` (with its extras) as a dataset directory.

    The directory appears only when complete. Returns the manifest.

    Example:

    >>> import numpy as np, tempfile, os
    >>> from tfsynth.data import ImageDataset, load_dataset
    >>> ds = ImageDataset(np.zeros((5, 8, 8, 1), np.uint8), np.arange(5) % 2)
    >>> out = os.path.join(tempfile.mkdtemp(), "d")
    >>> write_dataset_dir(out, ds)["num_examples"]
    5
    >>> len(load_dataset(out))
    5
    """
    from tfsynth.io import atomic_directory, atomic_write_json

    n = len(dataset)
    num_shards = max(1, -(-n // examples_per_shard))
    first = next(dataset.iter_batches(1))
    features = feature_spec_of({k: v for k, v in first.items() if k not in ("image", "label")})
    with atomic_directory(out, overwrite=overwrite) as tmp:
        shards = []
        for i in range(num_shards):
            start, stop = i * examples_per_shard, min(n, (i + 1) * examples_per_shard)
            part = dataset[start:stop]
            shards.append(
                write_shard(
                    tmp / shard_name(i, num_shards),
                    part.iter_batches(batch_size),
                    features,
                    dataset.num_classes,
                )
            )
        manifest = make_manifest(
            name=Path(out).name,
            shape=dataset.shape,
            class_names=dataset.class_names,
            shards=shards,
            features=features,
            metadata={**dataset.metadata, **(metadata or {})},
            labeled=dataset.labeled,
        )
        atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and validates DIR/manifest.json."""
    mpath = Path(path) / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise DataError(f"{mpath}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{mpath}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{mpath}: field 'format' must be {FORMAT!r}")
    for key, typ in (
        ("shape", list),
        ("class_names", list),
        ("shards", list),
        ("num_examples", int),
    ):
        if not isinstance(manifest.get(key), typ):
            raise DataError(f"{mpath}: field {key!r} missing or not a {typ.__name__}")
    shape = manifest["shape"]
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise DataError(f"{mpath}: field 'shape' must be [H, W, C] positive integers, got {shape}")
    for name, spec in manifest.get("features", {}).items():
        if spec.get("dtype") not in _DTYPES:
            raise DataError(
                f"{mpath}: feature {name!r} has dtype {spec.get('dtype')!r}, expected one of {_DTYPES}"
            )
    total = 0
    for s in manifest["shards"]:
        if not (Path(path) / s.get("file", "")).is_file():
            raise DataError(
                f"{Path(path) / str(s.get('file'))}: shard listed in manifest.json is missing"
            )
        total += int(s.get("num_examples", 0))
    if total != manifest["num_examples"]:
        raise DataError(
            f"{mpath}: shards hold {total} examples but 'num_examples' is {manifest['num_examples']}"
        )
    if total == 0:
        raise DataError(f"{path}: the dataset is empty (0 images)")
    return manifest


def verify_checksums(path: str | os.PathLike) -> None:
    """Recomputes every shard's SHA-256 and raises DataError on a mismatch."""
    manifest = read_manifest(path)
    for s in manifest["shards"]:
        f = Path(path) / s["file"]
        digest = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != s.get("sha256"):
            raise DataError(f"{f}: checksum mismatch; the shard is corrupt")


def _parser(shape: Sequence[int], features: Mapping[str, Mapping]):
    import tensorflow as tf

    tf_types = {"int64": tf.int64, "float32": tf.float32, "string": tf.string}
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    for name, f in features.items():
        spec[name] = tf.io.FixedLenFeature(f["shape"], tf_types[f["dtype"]])

    def parse(batch_of_records):
        ex = tf.io.parse_example(batch_of_records, spec)
        ex["image"] = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), [-1, *shape])
        return ex

    return parse


def load_dataset_dir(path: str | os.PathLike, name: str | None = None):
    """Opens a dataset directory as a streamed `ImageDataset`."""
    import tensorflow as tf

    from tfsynth.data.dataset import ImageDataset

    path = Path(path)
    manifest = read_manifest(path)
    files = [str(path / s["file"]) for s in manifest["shards"]]
    counts = np.array([s["num_examples"] for s in manifest["shards"]], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    parse = _parser(manifest["shape"], manifest.get("features", {}))

    def stream(start: int, stop: int) -> tf.data.Dataset:
        # Skip whole shards outside [start, stop) instead of reading them.
        first = int(np.searchsorted(offsets, start, side="right") - 1)
        last = int(np.searchsorted(offsets, stop, side="left"))
        ds = tf.data.TFRecordDataset(files[first:last])
        ds = ds.skip(start - int(offsets[first])).take(stop - start)
        return ds.batch(256).map(parse, num_parallel_calls=tf.data.AUTOTUNE).unbatch()

    return ImageDataset(
        stream=stream,
        num_examples=manifest["num_examples"],
        image_shape=manifest["shape"],
        class_names=manifest["class_names"],
        name=name or str(path),
        metadata={"manifest": {k: v for k, v in manifest.items() if k != "shards"}},
        labeled=manifest.get("labeled", True) is not False,
    )
