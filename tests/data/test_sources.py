import io

import numpy as np
import pytest

from tests.conftest import make_arrays
from tfsynth.data import load_dataset, parse_spec, write_idx
from tfsynth.data.sources import BUNDLED_MNIST
from tfsynth.errors import DataError

SHARED_MNIST = BUNDLED_MNIST  # the bundled files are the ../shared IDX files, unchanged


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _write_folder(root, sizes=((16, 16),) * 4, mode="L"):
    from PIL import Image

    for i, (h, w) in enumerate(sizes):
        d = root / f"class_{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.new(mode, (w, h), color=i * 40).save(d / f"img{i}.png")
    return root


# -- specs ---------------------------------------------------------------


def test_parse_spec_forms():
    assert parse_spec("mnist-10k[:8000]") == ("mnist-10k", "", slice(None, 8000))
    assert parse_spec("tfds:mnist:test[10:]") == ("tfds", "mnist:test", slice(10, None))
    assert parse_spec("npz:a.npz[-5:]") == ("npz", "a.npz", slice(-5, None))


def test_unknown_spec():
    with pytest.raises(DataError, match="unknown dataset spec 'bogus'"):
        load_dataset("bogus")


def test_mnist_10k():
    ds = load_dataset("mnist-10k")
    assert (len(ds), ds.shape, ds.num_classes) == (10000, (28, 28, 1), 10)
    assert ds.class_counts().sum() == 10000


def test_idx_and_npz_identical(tmp_path):
    idx = load_dataset(f"idx:{SHARED_MNIST}")
    _write_npz(tmp_path / "m.npz", images=idx.images, labels=idx.labels)
    npz = load_dataset(f"npz:{tmp_path / 'm.npz'}")
    np.testing.assert_array_equal(idx.images, npz.images)
    np.testing.assert_array_equal(idx.labels, npz.labels)
    assert idx.info()["class_counts"] == npz.info()["class_counts"]


@pytest.mark.parametrize("kind", ["npz", "idx", "folder", "dir", "mnist"])
def test_slicing_on_every_spec(tmp_path, kind):
    from tfsynth.data import write_dataset_dir

    images, labels = make_arrays(n=10)
    if kind == "npz":
        spec = f"npz:{_write_npz(tmp_path / 'a.npz', images=images, labels=labels)}"
    elif kind == "idx":
        write_idx(tmp_path / "a-images-idx3-ubyte", images[..., 0])
        write_idx(tmp_path / "a-labels-idx1-ubyte", labels.astype(np.uint8))
        spec = f"idx:{tmp_path}"
    elif kind == "folder":
        _write_folder(tmp_path / "f", sizes=[(16, 16)] * 10)
        spec = f"folder:{tmp_path / 'f'}"
    elif kind == "dir":
        from tfsynth.data import ImageDataset

        write_dataset_dir(tmp_path / "d", ImageDataset(images, labels), examples_per_shard=3)
        spec = str(tmp_path / "d")
    else:
        spec = "mnist-10k"
    full = load_dataset(spec)
    part = load_dataset(spec + "[2:7]")
    assert len(part) == 5
    np.testing.assert_array_equal(part.images, full.images[2:7])
    np.testing.assert_array_equal(part.labels, full.labels[2:7])
    assert len(load_dataset(spec + "[-3:]")) == 3


def test_folder_streams_and_reads(tmp_path):
    _write_folder(tmp_path / "f")
    ds = load_dataset(f"folder:{tmp_path / 'f'}")
    assert ds.is_streamed and ds.class_names == ["class_0", "class_1"]
    assert ds.shape == (16, 16, 1) and len(ds) == 4
    assert ds.images[1, 0, 0, 0] == 80  # class_0 holds img0, img2; sorted by class


def test_tfds_mock(monkeypatch):
    import tensorflow_datasets as tfds

    from tfsynth.data import sources

    monkeypatch.setattr(sources, "_can_download", lambda: True)
    with tfds.testing.mock_data(num_examples=12):
        ds = load_dataset("tfds:mnist:train")
        assert ds.is_streamed and ds.shape == (28, 28, 1) and ds.num_classes == 10
        assert len(ds) == 12 and ds.images.dtype == np.uint8
        part = load_dataset("tfds:mnist:train[2:5]")
        assert len(part) == 3


def test_tfds_offline_fails_fast(monkeypatch, tmp_path):
    from tfsynth.data import sources

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(sources, "_can_download", lambda: False)
    with pytest.raises(DataError, match="network is unreachable"):
        load_dataset("tfds:mnist")
    assert list(tmp_path.iterdir()) == []


# -- bad input -----------------------------------------------------------


def test_missing_paths(tmp_path):
    for spec, msg in [
        (f"npz:{tmp_path}/no.npz", "file not found"),
        (f"idx:{tmp_path}/no", "no such directory"),
        (f"folder:{tmp_path}/no", "no such directory"),
        (f"dir:{tmp_path}/no", "no such directory"),
    ]:
        with pytest.raises(DataError, match=msg):
            load_dataset(spec)


def test_npz_missing_arrays(tmp_path):
    p = _write_npz(tmp_path / "a.npz", x=np.zeros(3))
    with pytest.raises(DataError, match=r"a.npz: missing array\(s\) images"):
        load_dataset(f"npz:{p}")


def test_npz_pickled_objects(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, images=np.array([object(), None], dtype=object), labels=np.zeros(2))
    with pytest.raises(DataError, match="pickled Python objects"):
        load_dataset(f"npz:{p}")


def test_npz_not_a_zip(tmp_path):
    p = tmp_path / "a.npz"
    p.write_bytes(b"hello")
    with pytest.raises(DataError, match="a.npz"):
        load_dataset(f"npz:{p}")


def test_npz_truncated_zip(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, images=np.zeros((4, 4, 4, 1), np.uint8), labels=np.zeros(4, int))
    p = tmp_path / "a.npz"
    p.write_bytes(buf.getvalue()[:-40])
    with pytest.raises(DataError, match="a.npz"):
        load_dataset(f"npz:{p}")


def test_npz_count_mismatch_and_range_and_nan(tmp_path):
    images, labels = make_arrays(n=6)
    p = _write_npz(tmp_path / "a.npz", images=images, labels=labels[:5])
    with pytest.raises(DataError, match="6 images but 5 labels"):
        load_dataset(f"npz:{p}")
    p = _write_npz(
        tmp_path / "b.npz", images=images, labels=labels, class_names=np.array(["x", "y"])
    )
    with pytest.raises(DataError, match="labels out of range: found 2 with 2 classes"):
        load_dataset(f"npz:{p}")
    f = images.astype(np.float32) / 255
    f[0, 0, 0, 0] = np.nan
    p = _write_npz(tmp_path / "c.npz", images=f, labels=labels)
    with pytest.raises(DataError, match="c.npz: images contain NaN"):
        load_dataset(f"npz:{p}")


def test_idx_count_mismatch_and_truncation(tmp_path):
    images, labels = make_arrays(n=6)
    write_idx(tmp_path / "a-images-idx3-ubyte", images[..., 0])
    write_idx(tmp_path / "a-labels-idx1-ubyte", labels[:4].astype(np.uint8))
    with pytest.raises(DataError, match="4 labels for 6 images"):
        load_dataset(f"idx:{tmp_path}")
    write_idx(tmp_path / "a-labels-idx1-ubyte", labels.astype(np.uint8))
    raw = (tmp_path / "a-images-idx3-ubyte").read_bytes()
    (tmp_path / "a-images-idx3-ubyte").write_bytes(raw[:100])
    with pytest.raises(DataError, match="a-images-idx3-ubyte: truncated IDX data"):
        load_dataset(f"idx:{tmp_path}")


def test_folder_mixed_sizes(tmp_path):
    _write_folder(tmp_path / "f", sizes=[(16, 16), (16, 16), (20, 16), (16, 16)])
    with pytest.raises(DataError, match="img2.png: image is 20x16 but img0.png is 16x16"):
        load_dataset(f"folder:{tmp_path / 'f'}")


def test_folder_non_image_files(tmp_path):
    _write_folder(tmp_path / "f")
    (tmp_path / "f" / "class_0" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="notes.txt: not an image file"):
        load_dataset(f"folder:{tmp_path / 'f'}")
    (tmp_path / "f" / "class_0" / "notes.txt").unlink()
    (tmp_path / "f" / "class_0" / "fake.png").write_text("not a png")
    with pytest.raises(DataError, match="fake.png: not a readable image"):
        load_dataset(f"folder:{tmp_path / 'f'}")


def test_folder_empty(tmp_path):
    (tmp_path / "f" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="empty"):
        load_dataset(f"folder:{tmp_path / 'f'}")
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(f"folder:{tmp_path / 'f' / 'a'}")


def test_empty_slice():
    with pytest.raises(DataError, match="empty"):
        load_dataset("mnist-10k[20:10]")
