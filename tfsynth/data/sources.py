"""`load_dataset(spec)`: one string names a dataset everywhere.

Specs (see docs/design.md):

- ``mnist-10k``: the bundled MNIST test split (10,000 28x28 grey digits).
- ``tfds:NAME[:SPLIT]``: a TensorFlow Datasets dataset (streamed).
- ``npz:PATH``: arrays ``images`` (uint8 NHWC) and ``labels`` (int), and
  optionally ``class_names``; without ``labels`` the dataset is unlabelled.
- ``idx:DIR``: one pair of MNIST-format ``*-images-idx3-ubyte[.gz]`` and
  ``*-labels-idx1-ubyte[.gz]`` files.
- ``folder:DIR``: one sub-folder per class, as
  `keras.utils.image_dataset_from_directory` (streamed); images directly in
  DIR and no sub-folders: unlabelled.
- ``DIR`` (or ``dir:DIR``): a dataset directory written by tfsynth.

Any spec may end with a slice ``[a:b]`` (Python semantics) to take rows a..b-1.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

from tfsynth.data.dataset import ImageDataset
from tfsynth.data.idx import read_idx
from tfsynth.errors import DataError

BUNDLED_MNIST = Path(__file__).parent / "mnist_10k"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_SLICE = re.compile(r"^(?P<base>.*)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")
SPEC_HELP = (
    "expected mnist-10k, tfds:NAME[:SPLIT], npz:PATH, idx:DIR, folder:DIR or a "
    "tfsynth dataset directory, optionally followed by [a:b]"
)


def parse_spec(spec: str) -> tuple[str, str, slice | None]:
    """Splits a spec into (kind, argument, slice).

    >>> parse_spec("npz:data.npz[10:20]")
    ('npz', 'data.npz', slice(10, 20, None))
    >>> parse_spec("mnist-10k")
    ('mnist-10k', '', None)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"empty dataset spec; {SPEC_HELP}")
    spec = spec.strip()
    sl = None
    m = _SLICE.match(spec)
    if m:
        spec = m.group("base")
        to_int = lambda s: int(s) if s else None  # noqa: E731
        sl = slice(to_int(m.group("start")), to_int(m.group("stop")))
    if spec == "mnist-10k":
        return "mnist-10k", "", sl
    kind, sep, arg = spec.partition(":")
    if sep and kind in ("tfds", "npz", "idx", "folder", "dir"):
        if not arg:
            raise DataError(f"{spec}: missing the part after '{kind}:'; {SPEC_HELP}")
        return kind, arg, sl
    if Path(spec).is_dir():
        return "dir", spec, sl
    raise DataError(f"unknown dataset spec {spec!r}; {SPEC_HELP}")


def load_dataset(spec: str, *, unlabeled: bool = False) -> ImageDataset:
    """Loads the dataset named by `spec` (see the module docstring).

    Args:
        spec: a dataset spec such as ``"mnist-10k[:8000]"`` or ``"npz:d.npz"``.
        unlabeled: drop the labels (the CLI's ``--unlabeled``): the images
            are then read as an unlabelled set.

    Returns:
        An `ImageDataset`; TFDS datasets, folders and dataset directories are
        streamed, the others are held in memory.

    Raises:
        DataError: one line naming the file and the problem.

    Example:

    >>> ds = load_dataset("mnist-10k[:100]")
    >>> len(ds), ds.shape, ds.num_classes
    (100, (28, 28, 1), 10)
    >>> load_dataset("mnist-10k[:100]", unlabeled=True).info()["labels"]
    'unlabelled'
    """
    kind, arg, sl = parse_spec(spec)
    loader = {
        "tfds": _load_tfds,
        "mnist-10k": lambda a: load_idx(BUNDLED_MNIST, name="mnist-10k"),
        "npz": load_npz,
        "idx": load_idx,
        "folder": load_folder,
        "dir": _load_dir,
    }[kind]
    ds = loader(arg)
    if sl is not None:
        ds = ds[sl]
        ds.name = spec
    return ds.without_labels() if unlabeled and ds.labeled else ds


def _load_dir(path: str) -> ImageDataset:
    from tfsynth.data.records import is_dataset_dir, load_dataset_dir

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such directory")
    if is_dataset_dir(p):
        return load_dataset_dir(p)
    from tfsynth.data import tfds_store

    if tfds_store.is_tfds_dir(p):
        return tfds_store.load_tfds_dir(p)
    raise DataError(f"{p}: not a tfsynth dataset directory (no manifest.json)")


def load_npz(path: str | os.PathLike) -> ImageDataset:
    """Loads arrays ``images``, ``labels`` (and optional ``class_names``) from an .npz.

    Without a ``labels`` array the dataset is unlabelled.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z.files:
                raise DataError(
                    f"{path}: missing array(s) images; expected 'images' (uint8 NHWC) and "
                    f"optionally 'labels' (int), found {sorted(z.files)}"
                )
            images = z["images"]
            labels = z["labels"] if "labels" in z.files else None
            has_names = "class_names" in z.files and labels is not None
            class_names = [str(c) for c in z["class_names"]] if has_names else None
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(
                f"{path}: holds pickled Python objects, which tfsynth never loads; save plain numeric arrays"
            ) from None
        raise DataError(f"{path}: cannot read npz ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{path}: not a valid .npz file ({e})") from None
    return ImageDataset(images, labels, class_names=class_names, name=f"npz:{path}")


def _find_one(directory: Path, pattern: str) -> Path:
    found = sorted(p for p in directory.glob(f"*{pattern}*") if p.is_file())
    if not found:
        raise DataError(f"{directory}: no *{pattern}[.gz] file found")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(
            f"{directory}: several *{pattern} files ({names}); keep one pair per directory"
        )
    return found[0]


def load_idx(directory: str | os.PathLike, name: str | None = None) -> ImageDataset:
    """Loads one MNIST-format IDX image/label pair from a directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    img_path = _find_one(directory, "images-idx3-ubyte")
    lbl_path = _find_one(directory, "labels-idx1-ubyte")
    images = read_idx(img_path, kind="images")
    labels = read_idx(lbl_path, kind="labels")
    if len(images) != len(labels):
        raise DataError(
            f"{lbl_path}: {len(labels)} labels for {len(images)} images in {img_path.name}; counts must match"
        )
    return ImageDataset(images, labels, name=name or f"idx:{directory}")


def _read_image_size(path: Path) -> tuple[int, int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            channels = 1 if im.mode in ("L", "1", "I", "I;16", "F") else 3
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e.__class__.__name__})") from None
    return h, w, channels


def load_folder(directory: str | os.PathLike) -> ImageDataset:
    """Streams images from one sub-folder per class (sorted folder names = classes).

    Every file must be an image (png, jpg, bmp, gif) and all images must have
    the same height and width; grey and colour images are not mixed (colour
    wins, grey images are expanded). A folder with images and no
    sub-folders is an unlabelled dataset.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    class_dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    labeled = bool(class_dirs)
    if not class_dirs:
        if not any(
            f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS for f in directory.iterdir()
        ):
            raise DataError(
                f"{directory}: no class sub-folders and no images; expected "
                "DIR/CLASS_NAME/image.png (labelled) or DIR/image.png (unlabelled)"
            )
        class_dirs = [directory]
    files, labels = _folder_files(class_dirs)
    if not files:
        raise DataError(
            f"{directory}: the dataset is empty (no image files in {len(class_dirs)} class folders)"
        )
    return _folder_dataset(
        directory, files, labels, [p.name for p in class_dirs] if labeled else [], labeled
    )


def _folder_files(class_dirs: list[Path]) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for label, cdir in enumerate(class_dirs):
        for f in sorted(cdir.iterdir()):
            if f.name.startswith("."):
                continue
            if f.is_dir():
                raise DataError(
                    f"{f}: nested folders are not supported; put images directly in {cdir.name}/"
                )
            if f.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(f"{f}: not an image file (expected {', '.join(IMAGE_EXTENSIONS)})")
            files.append(f)
            labels.append(label)
    return files, labels


def _folder_dataset(directory: Path, files, labels, class_names, labeled: bool) -> ImageDataset:
    import tensorflow as tf

    # Reading the headers only (PIL is lazy) catches corrupt files and mixed
    # sizes now, with the file name, instead of mid-training inside tf.data.
    sizes = [_read_image_size(f) for f in files]
    h, w, _ = sizes[0]
    for f, (hh, ww, _) in zip(files, sizes):
        if (hh, ww) != (h, w):
            raise DataError(
                f"{f}: image is {hh}x{ww} but {files[0].name} is {h}x{w}; all images must have one size"
            )
    channels = max(c for _, _, c in sizes)
    paths = np.array([str(f) for f in files])
    label_arr = np.array(labels, np.int64)

    def decode(path, label):
        img = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        img.set_shape([h, w, channels])
        return {"image": tf.cast(img, tf.uint8), "label": label}

    def stream(start: int, stop: int) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices((paths[start:stop], label_arr[start:stop]))
        return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    return ImageDataset(
        stream=stream,
        num_examples=len(files),
        image_shape=(h, w, channels),
        class_names=class_names,
        name=f"folder:{directory}",
        labeled=labeled,
    )


def _can_download(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    """Whether the TFDS download host is reachable (fails fast when offline).

    TFDS itself retries each URL ten times with back-off, which takes minutes
    on a machine without network before it reports anything.
    """
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_tfds(arg: str) -> ImageDataset:
    import tensorflow as tf
    import tensorflow_datasets as tfds

    name, _, split = arg.partition(":")
    split = split or "train"
    spec = f"tfds:{arg}"
    try:
        builder = tfds.builder(name)
    except Exception as e:  # tfds raises several types for unknown names
        raise DataError(
            f"{spec}: unknown TFDS dataset {name!r} ({str(e).splitlines()[0]})"
        ) from None
    if not builder.is_prepared() and not _can_download():
        raise DataError(
            f"{spec}: TFDS data for {name!r} is not prepared in {builder.data_dir} and the "
            "network is unreachable; prepare it once with network access (or copy the "
            "tensorflow_datasets folder here), or use a local spec such as mnist-10k"
        )
    try:
        builder.download_and_prepare()
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{spec}: TFDS could not prepare {name!r}: {first[:160]}") from None
    if builder.info.splits:
        try:
            num = builder.info.splits[split].num_examples
        except (KeyError, ValueError) as e:
            known = ", ".join(builder.info.splits.keys())
            raise DataError(
                f"{spec}: unknown split {split!r} for {name!r} (splits: {known}; {e})"
            ) from None
    else:
        # Without split metadata (e.g. under tfds.testing.mock_data) count once.
        num = int(builder.as_dataset(split=split).reduce(0, lambda n, _: n + 1))
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    feature = builder.info.features[image_key]
    label_feature = builder.info.features[label_key]
    class_names = list(label_feature.names)
    shape = feature.shape
    if None in shape:
        raise DataError(
            f"{spec}: images have variable size {shape}; tfsynth needs a fixed H x W x C"
        )

    def stream(start: int, stop: int) -> tf.data.Dataset:
        ds = builder.as_dataset(split=split, shuffle_files=False)
        ds = ds.skip(start).take(stop - start)
        return ds.map(
            lambda e: {
                "image": tf.cast(e[image_key], tf.uint8),
                "label": tf.cast(e[label_key], tf.int64),
            },
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return ImageDataset(
        stream=stream,
        num_examples=num,
        image_shape=shape,
        class_names=class_names,
        name=spec,
    )
