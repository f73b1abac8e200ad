"""Materialized augmentation: N augmented examples with provenance, as batches or a dataset dir.

Output example i is defined by (seed, i) alone, so any index range — a
shard of a fused dataset — can be produced on its own and two runs are
byte-identical:

- its source is `source_indices(N, i, i + 1, seed)`: pass p = i // N over
  the source uses a seeded permutation of the N examples, so every source
  example is used once per pass and a short run is a random sample;
- the augmentation is drawn per block of `BLOCK_SIZE` consecutive output
  indices (block b = i // BLOCK_SIZE) with the stateless seed (seed, b).
  Blocks are the unit of computation (MixUp/CutMix pair examples within a
  block), and a range that starts or ends inside a block computes the whole
  block and keeps its part.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.augment.policy import AugmentationPolicy, build_policy
from tfsynth.config import AugmentConfig
from tfsynth.data.dataset import ImageDataset
from tfsynth.errors import ConfigError

BLOCK_SIZE = 256


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def source_indices(num_source: int, start: int, stop: int, seed: int) -> np.ndarray:
    """Source example of each output index in [start, stop) (int64).

    >>> source_indices(4, 0, 8, seed=0).reshape(2, 4).tolist() != [[0, 1, 2, 3]] * 2
    True
    >>> sorted(source_indices(4, 4, 8, seed=0).tolist())
    [0, 1, 2, 3]
    """
    out = np.empty(stop - start, np.int64)
    i = start
    while i < stop:
        epoch, pos = divmod(i, num_source)
        k = min(stop - i, num_source - pos)
        perm = np.random.default_rng([seed, epoch]).permutation(num_source)
        out[i - start : i - start + k] = perm[pos : pos + k]
        i += k
    return out


def shared_policy(policy, seed: int, num_classes: int | None) -> AugmentationPolicy:
    """The policy of a spec, one per (spec, seed, K) while the process lives.

    Fusion asks for the same spec once per shard and search candidate, and
    a fresh policy is a fresh `tf.function`: tracing it cost more than
    augmenting. A policy object is used as it is.

    >>> shared_policy("rotate:10", 0, 10) is shared_policy({"rotate": 10}, 0, 10)
    True
    """
    if isinstance(policy, Mapping):
        policy = build_policy(policy).spec
    if not isinstance(policy, str):  # a policy object, or a bad value build_policy names
        return build_policy(policy, seed=seed, num_classes=num_classes)
    return _spec_policy(policy, seed, num_classes)


@functools.lru_cache(maxsize=16)
def _spec_policy(spec: str, seed: int, num_classes: int | None) -> AugmentationPolicy:
    return build_policy(spec, seed=seed, num_classes=num_classes)


def augment_batches(
    dataset: ImageDataset,
    policy: str | Mapping[str, Any] | AugmentationPolicy,
    n: int,
    *,
    seed: int = 0,
    start: int = 0,
    batch_size: int = 256,
) -> Iterator[dict[str, np.ndarray]]:
    """Yields `n` augmented examples, output indices [start, start + n), in batches.

    Each batch is a dict of NumPy arrays: "image" (uint8 NHWC), "label"
    (int64; for label-mixing policies the class with the largest soft-label
    weight), "source_index" (int64, the row of `dataset` the image was made
    from; for MixUp/CutMix the image the mix is based on), "policy" (str,
    the canonical policy spec) and, for label-mixing policies, "soft_label"
    (float32 [K], summing to 1).

    The output for an index depends only on (seed, index), not on `start`,
    `n` or `batch_size` (see the module docstring), so shards can be made
    independently. The source is loaded into memory once.

    Example:

    >>> import numpy as np
    >>> ds = ImageDataset(np.zeros((10, 16, 16, 1), np.uint8), np.arange(10) % 2)
    >>> batch = next(augment_batches(ds, "rotate:10", 6, seed=1, batch_size=6))
    >>> sorted(batch), batch["image"].shape
    (['image', 'label', 'policy', 'source_index'], (6, 16, 16, 1))
    """
    import tensorflow as tf

    n = _check_int("n", n, 1)
    start = _check_int("start", start, 0)
    batch_size = _check_int("batch_size", batch_size, 1)
    seed = _check_int("seed", seed, 0)
    policy = shared_policy(policy, seed, dataset.num_classes)
    images, labels = dataset.numpy()
    first, last = start // BLOCK_SIZE, (start + n - 1) // BLOCK_SIZE
    blocks = np.arange(first, last + 1, dtype=np.int64)
    idx = source_indices(len(dataset), first * BLOCK_SIZE, (last + 1) * BLOCK_SIZE, seed)
    idx = idx.reshape(-1, BLOCK_SIZE)
    fn = policy.compiled()

    def augmented_blocks():
        # A plain loop of compiled calls: a tf.data pipeline built per call
        # pays function instantiation every time, which dominated fusion's
        # per-class, per-shard calls (bench/results/design_measurements.md).
        for b, rows in zip(blocks, idx):
            seed_b = tf.constant([seed, b], tf.int64)
            x, y = fn(tf.constant(images[rows]), tf.constant(labels[rows]), seed_b)
            yield x.numpy(), y.numpy()

    pending: list[dict[str, np.ndarray]] = []
    count = 0
    pos = first * BLOCK_SIZE
    for (x, y), rows in zip(augmented_blocks(), idx):
        lo, hi = max(start - pos, 0), min(start + n - pos, BLOCK_SIZE)
        pos += BLOCK_SIZE
        part = {"image": x[lo:hi], "source_index": rows[lo:hi]}
        if policy.label_mixing:
            part["soft_label"] = y[lo:hi].astype(np.float32)
            part["label"] = y[lo:hi].argmax(axis=1).astype(np.int64)
        else:
            part["label"] = y[lo:hi].astype(np.int64)
        pending.append(part)
        count += hi - lo
        while count >= batch_size:
            merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
            yield _with_policy(
                {k: v[:batch_size] for k, v in merged.items()}, policy.spec, batch_size
            )
            pending = [{k: v[batch_size:] for k, v in merged.items()}]
            count -= batch_size
    if count:
        merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
        yield _with_policy(merged, policy.spec, count)


def _with_policy(batch: dict[str, np.ndarray], spec: str, k: int) -> dict[str, np.ndarray]:
    ordered = {"image": batch["image"], "label": batch["label"]}
    ordered["source_index"] = batch["source_index"]
    ordered["policy"] = np.full(k, spec)
    if "soft_label" in batch:
        ordered["soft_label"] = batch["soft_label"]
    return ordered


def preview_figure(
    originals: np.ndarray,
    original_labels: np.ndarray,
    augmented: np.ndarray,
    augmented_labels: np.ndarray,
    class_names,
    title: str,
    ncols: int = 10,
):
    """Rows of originals, each followed by the row of their augmentations."""
    from tfsynth.plotting import image_grid

    ncols = max(1, min(ncols, len(originals)))
    tiles, tile_labels = [], []
    for s in range(0, len(originals), ncols):
        for images, labels in ((originals, original_labels), (augmented, augmented_labels)):
            row = list(images[s : s + ncols])
            pad = ncols - len(row)
            tiles.extend(row + [np.full_like(row[0], 255)] * pad)
            tile_labels.extend(list(labels[s : s + ncols]) + [0] * pad)
    return image_grid(np.stack(tiles), tile_labels, class_names, ncols=ncols, title=title)


def augment_to_dir(
    data: ImageDataset | str,
    config: AugmentConfig | str | Mapping[str, Any] | AugmentationPolicy | None = None,
    n: int | None = None,
    *,
    out: str | os.PathLike,
    **options,
) -> dict[str, Any]:
    """Writes `config.num_examples` augmented examples of `data` as a dataset directory.

    The directory holds TFRecord shards with the provenance columns of
    `augment_batches` ("source_index", "policy", and "soft_label" for
    label-mixing policies), manifest.json (metadata "augment": policy, seed,
    source, label_mixing) and summary.json. It appears only when complete.
    `config` is an `AugmentConfig` (every option and its default), or a
    policy for `AugmentConfig(policy, n)`; `**options` are its fields that
    replace the config's. `preview` (a .png path) gets a grid of originals
    above their augmentations. Returns the manifest.

    Raises:
        ConfigError / DataError: bad policy, counts, paths or data; nothing
            is written then.

    Example:

    >>> import numpy as np, tempfile, os
    >>> from tfsynth.data import load_dataset
    >>> ds = ImageDataset(np.zeros((10, 16, 16, 1), np.uint8), np.arange(10) % 2)
    >>> out = os.path.join(tempfile.mkdtemp(), "aug")
    >>> augment_to_dir(ds, "digits", 12, out=out)["num_examples"]
    12
    >>> sorted(load_dataset(out).extras)
    ['policy', 'source_index']
    """
    from tfsynth.data.sources import load_dataset
    from tfsynth.io import atomic_directory

    t0 = time.perf_counter()
    if not isinstance(config, AugmentConfig):  # the old call: a policy and a count
        config = AugmentConfig(**({} if config is None else {"policy": config}))
    if n is not None:
        options = {"num_examples": n, **options}
    cfg = config.replace(**options).validate()
    n, seed, preview, overwrite = int(cfg.num_examples), int(cfg.seed), cfg.preview, cfg.overwrite
    batch_size, examples_per_shard = int(cfg.batch_size), int(cfg.examples_per_shard)
    if Path(out).exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; choose another --out or pass --overwrite")
    dataset = load_dataset(data) if isinstance(data, str) else data
    policy = build_policy(cfg.policy, seed=seed, num_classes=dataset.num_classes)
    features = _provenance_features(policy, dataset.num_classes)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        shards, first = _write_augmented_shards(
            tmp, dataset, policy, n, seed, batch_size, examples_per_shard, features
        )
        info = _augment_info(dataset, policy, seed)
        manifest = _write_manifest(tmp, Path(out).name, dataset, policy, shards, features, info)
        seconds = time.perf_counter() - t0
        _write_augment_summary(tmp, info, out, n, len(shards), seconds, preview)
    if preview is not None:
        _save_preview(preview, dataset, policy, first)
    return manifest


def _provenance_features(policy: AugmentationPolicy, num_classes: int) -> dict[str, Any]:
    """The feature spec of the provenance columns that `augment_batches` yields."""
    from tfsynth.data.records import feature_spec_of

    columns = {"source_index": np.zeros(1, np.int64), "policy": np.array([policy.spec])}
    if policy.label_mixing:
        columns["soft_label"] = np.zeros((1, num_classes), np.float32)
    return feature_spec_of(columns)


def _write_augmented_shards(
    tmp: Path,
    dataset: ImageDataset,
    policy: AugmentationPolicy,
    n: int,
    seed: int,
    batch_size: int,
    examples_per_shard: int,
    features: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Writes output indices [0, n) as shards under `tmp`; returns them and the first batch."""
    from tfsynth.data.records import shard_name, write_shard

    num_shards = -(-n // examples_per_shard)
    kept: list[dict[str, np.ndarray]] = []

    def keep_first(batches):
        for batch in batches:
            if not kept:
                kept.append(batch)
            yield batch

    shards = []
    for i in range(num_shards):
        s, e = i * examples_per_shard, min(n, (i + 1) * examples_per_shard)
        batches = augment_batches(dataset, policy, e - s, seed=seed, start=s, batch_size=batch_size)
        path = tmp / shard_name(i, num_shards)
        shards.append(write_shard(path, keep_first(batches), features, dataset.num_classes))
    return shards, kept[0]


def _augment_info(dataset: ImageDataset, policy: AugmentationPolicy, seed: int) -> dict[str, Any]:
    """The manifest's "augment" metadata: what makes the output reproducible."""
    return {
        "policy": policy.spec,
        "seed": seed,
        "source": dataset.name,
        "source_num_examples": len(dataset),
        "label_mixing": policy.label_mixing,
        "block_size": BLOCK_SIZE,
    }


def _write_manifest(tmp, name, dataset, policy, shards, features, info) -> dict[str, Any]:
    from tfsynth.data.records import MANIFEST, make_manifest
    from tfsynth.io import atomic_write_json

    manifest = make_manifest(
        name=name,
        shape=dataset.shape,
        class_names=dataset.class_names,
        shards=shards,
        features=features,
        metadata={"source": dataset.name, "label_mixing": policy.label_mixing, "augment": info},
    )
    atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


def _write_augment_summary(tmp, info, out, n, num_shards, seconds, preview) -> None:
    from tfsynth.summary import write_summary

    write_summary(
        tmp,
        "augment",
        {
            **info,
            "out": str(out),
            "num_examples": n,
            "num_shards": num_shards,
            "seconds": round(seconds, 3),
            "images_per_second": round(n / seconds, 1),
            "preview": None if preview is None else str(preview),
        },
    )


def _save_preview(preview, dataset: ImageDataset, policy: AugmentationPolicy, first) -> None:
    """Saves up to 20 originals above their augmentations from the first batch."""
    from tfsynth.plotting import save_figure

    k = min(20, len(first["image"]))
    images, labels = dataset.numpy()
    sources = first["source_index"][:k]
    fig = preview_figure(
        images[sources],
        labels[sources],
        first["image"][:k],
        first["label"][:k],
        dataset.class_names,
        title=f"{policy.spec}\noriginals (odd rows) and augmentations (even rows)",
    )
    save_figure(fig, preview)
