"""`ImageDataset`: the one type that carries images between tfsynth stages."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tfsynth.errors import DataError

# A stream factory returns the examples [start, stop) as a tf.data.Dataset of
# dicts with "image" (uint8 HWC), "label" (int64) and any extra columns.
StreamFactory = Callable[[int, int], Any]


def validate_arrays(
    images: Any, labels: Any, num_classes: int | None = None, where: str = "arrays"
) -> tuple[np.ndarray, np.ndarray]:
    """Checks and converts images/labels to uint8 NHWC and int64.

    Float images must be finite and lie in [0, 1] (scaled by 255) or in
    [0, 255]. Grey images given as NHW get a channel axis.

    Raises:
        DataError: naming `where` and the problem.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype == object or labels.dtype == object:
        raise DataError(f"{where}: object arrays are not supported; expected numeric arrays")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{where}: images must be NHWC with 1, 3 or 4 channels, got shape {images.shape}"
        )
    if len(images) == 0:
        raise DataError(f"{where}: the dataset is empty (0 images)")
    if labels.ndim != 1:
        raise DataError(f"{where}: labels must be a 1-D array, got shape {labels.shape}")
    if len(labels) != len(images):
        raise DataError(
            f"{where}: {len(images)} images but {len(labels)} labels; counts must match"
        )
    if images.dtype.kind == "f":
        if not np.all(np.isfinite(images)):
            raise DataError(f"{where}: images contain NaN or infinite values")
        lo, hi = float(images.min()), float(images.max())
        if lo < 0 or hi > 255:
            raise DataError(
                f"{where}: float images must lie in [0, 1] or [0, 255], got [{lo}, {hi}]"
            )
        scale = 255.0 if hi <= 1.0 else 1.0
        images = np.round(images * scale).astype(np.uint8)
    elif images.dtype.kind in "iub":
        if images.dtype != np.uint8:
            lo, hi = int(images.min()), int(images.max())
            if lo < 0 or hi > 255:
                raise DataError(f"{where}: integer images must lie in [0, 255], got [{lo}, {hi}]")
            images = images.astype(np.uint8)
    else:
        raise DataError(f"{where}: unsupported image dtype {images.dtype}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise DataError(f"{where}: labels contain NaN or infinite values")
        if not np.all(labels == np.round(labels)):
            raise DataError(f"{where}: labels must be integers, found fractional values")
    elif labels.dtype.kind not in "iub":
        raise DataError(f"{where}: unsupported label dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"{where}: labels out of range: found {labels.min()} (must be >= 0)")
    if num_classes is not None and labels.max() >= num_classes:
        raise DataError(
            f"{where}: labels out of range: found {labels.max()} with {num_classes} classes"
        )
    return images, labels


def _parse_slice(start: int | None, stop: int | None, n: int) -> tuple[int, int]:
    s, e, _ = slice(start, stop).indices(n)
    return s, max(s, e)


class ImageDataset:
    """An image dataset: uint8 NHWC images, int labels and class names, or no labels.

    Unlabelled data (``labels=None``, an npz without ``labels``, a folder of
    images without class sub-folders) has `labeled` False, no classes and
    label 0 on every row, so pipelines that ignore labels (self-supervised
    training, unconditional generators) read it as they read labelled data;
    commands that need labels call `require_labels` first.

    It is backed either by in-memory arrays or by a stream (a function that
    returns a `tf.data.Dataset` for a range of examples), so large sources
    such as TFDS datasets or image folders are not loaded whole unless
    `numpy()` is called. Slicing (`ds[100:200]`) never materializes a stream.

    Args:
        images: uint8 array (N, H, W, C), or None for a streamed dataset.
        labels: int array (N,), or None for a streamed dataset.
        class_names: one name per class; defaults to "0", "1", ...
        name: a short name, e.g. the spec it was loaded from.
        extras: optional per-example columns (provenance, soft labels),
            each an array with N rows.
        stream: for a streamed dataset, `stream(start, stop)` returns a
            `tf.data.Dataset` of dicts with "image", "label" and the extras.
        num_examples: for a streamed dataset, the number of examples.
        image_shape: for a streamed dataset, (H, W, C).
        metadata: free-form metadata (a dataset directory's manifest).
        labeled: for a streamed dataset, False when its labels mean nothing
            (in memory, ``labels=None`` says so).

    Example:

    >>> import numpy as np
    >>> ds = ImageDataset(np.zeros((8, 16, 16, 1), np.uint8), np.arange(8) % 2)
    >>> len(ds), ds.shape, ds.num_classes
    (8, (16, 16, 1), 2)
    >>> x, y = next(iter(ds.to_tf_dataset(batch_size=4, shuffle=False)))
    >>> x.shape, float(x.numpy().min())
    (TensorShape([4, 16, 16, 1]), -1.0)
    >>> u = ImageDataset(np.zeros((8, 16, 16, 1), np.uint8))
    >>> u.labeled, u.num_classes, u.info()["labels"]
    (False, 0, 'unlabelled')
    """

    def __init__(
        self,
        images: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        *,
        class_names: Sequence[str] | None = None,
        name: str = "dataset",
        extras: Mapping[str, np.ndarray] | None = None,
        stream: StreamFactory | None = None,
        num_examples: int | None = None,
        image_shape: Sequence[int] | None = None,
        metadata: Mapping[str, Any] | None = None,
        labeled: bool = True,
    ):
        self.name = name
        self.metadata = dict(metadata or {})
        self.labeled = bool(labeled) and (stream is not None or labels is not None)
        if not self.labeled:
            class_names = []
        if stream is None:
            if images is None:
                raise DataError(f"{name}: images are required")
            if labels is None:
                labels = np.zeros(len(images), np.int64)
            n_cls = len(class_names) if class_names is not None and self.labeled else None
            self._images, self._labels = validate_arrays(images, labels, n_cls, where=name)
            self._num_examples = len(self._images)
            self._shape = tuple(int(d) for d in self._images.shape[1:])
            if class_names is None:
                class_names = [str(i) for i in range(int(self._labels.max()) + 1)]
            self._extras = {k: np.asarray(v) for k, v in (extras or {}).items()}
            for k, v in self._extras.items():
                if len(v) != self._num_examples:
                    raise DataError(
                        f"{name}: extra column {k!r} has {len(v)} rows, expected {len(self._images)}"
                    )
            self._stream = None
        else:
            if num_examples is None or image_shape is None or class_names is None:
                raise DataError(f"{name}: a streamed dataset needs num_examples, shape, classes")
            if num_examples <= 0:
                raise DataError(f"{name}: the dataset is empty (0 images)")
            self._images = self._labels = None
            self._extras = None
            self._num_examples = int(num_examples)
            self._shape = tuple(int(d) for d in image_shape)
            self._stream = stream
        self.class_names = [str(c) for c in class_names]

    # -- basic properties ---------------------------------------------------
    def __len__(self) -> int:
        return self._num_examples

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape (H, W, C)."""
        return self._shape

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_streamed(self) -> bool:
        """True when examples are read on demand rather than held in memory."""
        return self._stream is not None and self._images is None

    def __repr__(self) -> str:
        kind = "streamed" if self.is_streamed else "in-memory"
        return (
            f"ImageDataset(name={self.name!r}, num_examples={len(self)}, "
            f"shape={self.shape}, num_classes={self.num_classes}, {kind})"
        )

    # -- access -------------------------------------------------------------
    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns (images uint8 NHWC, labels int64), loading a stream once."""
        if self._images is None:
            self._materialize()
        return self._images, self._labels

    @property
    def images(self) -> np.ndarray:
        return self.numpy()[0]

    @property
    def labels(self) -> np.ndarray:
        return self.numpy()[1]

    @property
    def extras(self) -> dict[str, np.ndarray]:
        """Per-example extra columns (provenance, soft labels), as arrays."""
        if self._extras is None:
            self._materialize()
        return self._extras

    def _materialize(self) -> None:
        images = np.empty((len(self), *self.shape), np.uint8)
        labels = np.empty((len(self),), np.int64)
        extras: dict[str, list] = {}
        pos = 0
        for batch in self.iter_batches(1024):
            k = len(batch["label"])
            if pos + k > len(self):
                raise DataError(f"{self.name}: more examples than the declared {len(self)}")
            images[pos : pos + k] = batch["image"]
            labels[pos : pos + k] = batch["label"]
            for key, v in batch.items():
                if key not in ("image", "label"):
                    extras.setdefault(key, []).append(v)
            pos += k
        if pos != len(self):
            raise DataError(f"{self.name}: expected {len(self)} examples, read {pos}")
        if self.labeled and labels.max(initial=0) >= self.num_classes:
            raise DataError(
                f"{self.name}: labels out of range: found {labels.max()} "
                f"with {self.num_classes} classes"
            )
        self._images, self._labels = images, labels
        self._extras = {k: np.concatenate(v) for k, v in extras.items()}

    def element_dataset(self, start: int = 0, stop: int | None = None):
        """A `tf.data.Dataset` of example dicts ("image" uint8 HWC, "label", extras)."""
        import tensorflow as tf

        start, stop = _parse_slice(start, stop, len(self))
        if self._images is not None:
            cols = {"image": self._images[start:stop], "label": self._labels[start:stop]}
            for k, v in self.extras.items():
                cols[k] = v[start:stop]
            return tf.data.Dataset.from_tensor_slices(cols)
        return self._stream(start, stop)

    def iter_batches(self, batch_size: int = 256) -> Iterator[dict[str, np.ndarray]]:
        """Yields dicts of NumPy arrays, `batch_size` examples at a time, in order."""
        if self._images is not None:
            for s in range(0, len(self), batch_size):
                out = {
                    "image": self._images[s : s + batch_size],
                    "label": self._labels[s : s + batch_size],
                }
                for k, v in self.extras.items():
                    out[k] = v[s : s + batch_size]
                yield out
            return
        yield from self.element_dataset().batch(batch_size).as_numpy_iterator()

    def __getitem__(self, item: slice) -> ImageDataset:
        """Returns the examples in a slice, as `spec[a:b]` does."""
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise DataError(f"{self.name}: only contiguous slices [a:b] are supported")
        start, stop = _parse_slice(item.start, item.stop, len(self))
        name = f"{self.name}[{start}:{stop}]"
        if stop <= start:
            raise DataError(f"{name}: the slice is empty (0 images)")
        if self._images is not None:
            return ImageDataset(
                self._images[start:stop],
                self._labels[start:stop],
                class_names=self.class_names,
                name=name,
                extras={k: v[start:stop] for k, v in self.extras.items()},
                metadata=self.metadata,
                labeled=self.labeled,
            )
        parent = self._stream
        return ImageDataset(
            stream=lambda s, e: parent(start + s, start + e),
            num_examples=stop - start,
            image_shape=self.shape,
            class_names=self.class_names,
            name=name,
            metadata=self.metadata,
            labeled=self.labeled,
        )

    def without_labels(self) -> ImageDataset:
        """The same images as an unlabelled dataset (what `--unlabeled` does to a spec)."""
        if self._images is not None:
            return ImageDataset(
                self._images,
                None,
                name=self.name,
                extras=self.extras,
                metadata=self.metadata,
            )
        return ImageDataset(
            stream=self._stream,
            num_examples=len(self),
            image_shape=self.shape,
            class_names=[],
            name=self.name,
            metadata=self.metadata,
            labeled=False,
        )

    def require_labels(self, what: str) -> ImageDataset:
        """Returns self, or raises DataError (one line) when the dataset is unlabelled.

        >>> import numpy as np
        >>> ImageDataset(np.zeros((2, 8, 8, 1), np.uint8), name="u").require_labels("fuse")
        Traceback (most recent call last):
        ...
        tfsynth.errors.DataError: u: the dataset is unlabelled; fuse needs labelled images
        """
        if not self.labeled:
            raise DataError(f"{self.name}: the dataset is unlabelled; {what} needs labelled images")
        return self

    def split(self, fractions: Sequence[float], seed: int = 0) -> list[ImageDataset]:
        """Splits into disjoint, seeded random parts with the given fractions.

        The fractions must sum to at most 1; parts never share a row.
        """
        if any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
            raise DataError(f"{self.name}: split fractions must be > 0 and sum to <= 1")
        images, labels = self.numpy()
        order = np.random.default_rng(seed).permutation(len(self))
        bounds = np.cumsum([0] + [int(round(f * len(self))) for f in fractions])
        parts = []
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            idx = np.sort(order[a:b])
            parts.append(
                ImageDataset(
                    images[idx],
                    labels[idx],
                    class_names=self.class_names,
                    name=f"{self.name}#split{i}",
                    extras={k: v[idx] for k, v in self.extras.items()},
                    metadata=self.metadata,
                    labeled=self.labeled,
                )
            )
        return parts

    # -- summaries ----------------------------------------------------------
    def class_counts(self) -> np.ndarray:
        """Number of examples per class (length `num_classes`; empty when unlabelled)."""
        if not self.labeled:
            return np.zeros(0, np.int64)
        if self._labels is not None:
            labels = self._labels
        else:
            labels = np.concatenate(
                list(
                    self.element_dataset().map(lambda e: e["label"]).batch(4096).as_numpy_iterator()
                )
            )
        if labels.max(initial=0) >= self.num_classes:
            raise DataError(
                f"{self.name}: labels out of range: found {labels.max()} "
                f"with {self.num_classes} classes"
            )
        return np.bincount(labels, minlength=self.num_classes)

    def info(self) -> dict[str, Any]:
        """A JSON-ready description: count, shape, classes and class histogram."""
        counts = self.class_counts()
        return {
            "name": self.name,
            "num_examples": len(self),
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "class_counts": {n: int(c) for n, c in zip(self.class_names, counts)},
            "labels": "labelled" if self.labeled else "unlabelled",
            "streamed": self.is_streamed,
        }

    # -- training input -----------------------------------------------------
    def to_tf_dataset(
        self,
        batch_size: int = 64,
        *,
        shuffle: bool = True,
        seed: int = 0,
        cache: bool | str = True,
        drop_remainder: bool = False,
        repeat: bool = False,
        normalize: bool = True,
        shuffle_buffer: int | None = None,
        map_batch: Callable | None = None,
        augment=None,
    ):
        """A batched `tf.data.Dataset` of (images, labels) for training.

        See `tfsynth.data.pipeline.make_pipeline` for the arguments.
        """
        from tfsynth.data.pipeline import make_pipeline

        return make_pipeline(
            self.element_dataset(),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            cache=cache,
            drop_remainder=drop_remainder,
            repeat=repeat,
            normalize=normalize,
            shuffle_buffer=shuffle_buffer or min(len(self), 10_000),
            map_batch=map_batch,
            augment=augment,
        )

    def epoch_batches(
        self,
        batch_size: int,
        steps_per_epoch: int,
        *,
        seed: int = 0,
        start_step: int = 0,
        stop_step: int,
    ):
        """Training batches for global steps `[start_step, stop_step)`, resumable exactly.

        Epoch e's order depends only on (seed, e), so a stream started at a
        checkpoint's step continues an interrupted run batch for batch (see
        `tfsynth.data.pipeline.epoch_batches`). Loads a streamed dataset.
        """
        from tfsynth.data.pipeline import epoch_batches

        images, labels = self.numpy()
        return epoch_batches(
            images,
            labels,
            batch_size,
            steps_per_epoch,
            seed=seed,
            start_step=start_step,
            stop_step=stop_step,
        )


def check_compatible(reference: ImageDataset, *others: ImageDataset | None) -> None:
    """Raises DataError unless all datasets share image shape and class count (None is skipped).

    Example:

    >>> a = ImageDataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]), name="a")
    >>> b = ImageDataset(np.zeros((2, 8, 8, 1), np.uint8), np.array([0, 1]), name="b")
    >>> check_compatible(a, None, a)
    >>> check_compatible(a, b)
    Traceback (most recent call last):
    ...
    tfsynth.errors.DataError: b: images are 8x8x1 but a has 4x4x1; shapes must match
    """
    for ds in others:
        if ds is None:
            continue
        if tuple(ds.shape) != tuple(reference.shape):
            raise DataError(
                f"{ds.name}: images are {'x'.join(map(str, ds.shape))} but {reference.name} has "
                f"{'x'.join(map(str, reference.shape))}; shapes must match"
            )
        if ds.num_classes != reference.num_classes:
            raise DataError(
                f"{ds.name}: {ds.num_classes} classes but {reference.name} has "
                f"{reference.num_classes}; class counts must match"
            )
