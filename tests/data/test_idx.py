import gzip

import numpy as np
import pytest

from tfsynth.data.idx import read_idx, write_idx
from tfsynth.errors import DataError


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_round_trip(tmp_path, name):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, arr)
    np.testing.assert_array_equal(read_idx(tmp_path / name), arr)


def test_reads_bundled_header_values():
    from tfsynth.data.sources import BUNDLED_MNIST

    images = read_idx(BUNDLED_MNIST / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8


def test_truncated_data(tmp_path):
    write_idx(tmp_path / "x", np.zeros((4, 5, 5), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-7])
    with pytest.raises(DataError, match=r"x: truncated IDX data"):
        read_idx(tmp_path / "x")


def test_truncated_header(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(tmp_path / "x")


def test_bad_magic(tmp_path):
    (tmp_path / "x").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "x")


def test_trailing_garbage(tmp_path):
    write_idx(tmp_path / "x", np.zeros((2, 2), np.uint8))
    (tmp_path / "x").write_bytes((tmp_path / "x").read_bytes() + b"junk")
    with pytest.raises(DataError, match="unexpected bytes"):
        read_idx(tmp_path / "x")


def test_corrupt_gzip(tmp_path):
    data = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x10" + bytes(16))
    (tmp_path / "x.gz").write_bytes(data[:-10])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(tmp_path / "x.gz")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope")


def _mnist_pair(tmp_path, images_magic=None, labels_magic=None):
    """Writes a 3-image MNIST pair, optionally with a replaced magic number."""
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    img = write_idx(tmp_path / "t-images-idx3-ubyte", images)
    lbl = write_idx(tmp_path / "t-labels-idx1-ubyte", np.array([0, 1, 2], np.uint8))
    for path, magic in ((img, images_magic), (lbl, labels_magic)):
        if magic is not None:
            path.write_bytes(magic.to_bytes(4, "big") + path.read_bytes()[4:])
    return img, lbl


@pytest.mark.parametrize("magic", [0x00000801, 0x00000802, 0x00000804, 0x12345678])
def test_images_file_with_wrong_magic_is_named(tmp_path, magic):
    from tfsynth.data import load_dataset

    img, _ = _mnist_pair(tmp_path, images_magic=magic)
    with pytest.raises(DataError) as e:
        load_dataset(f"idx:{tmp_path}")
    assert str(e.value).startswith(f"{img}: not an IDX images file")
    assert f"0x{magic:08x}" in str(e.value)
    assert "count" not in str(e.value) and "unexpected bytes" not in str(e.value)


@pytest.mark.parametrize("magic", [0x00000803, 0x00000C03, 0x00000802, 0xFFFFFFFF])
def test_labels_file_with_wrong_magic_is_named(tmp_path, magic):
    from tfsynth.data import load_dataset

    _, lbl = _mnist_pair(tmp_path, labels_magic=magic)
    with pytest.raises(DataError) as e:
        load_dataset(f"idx:{tmp_path}")
    assert str(e.value).startswith(f"{lbl}: not an IDX labels file")
    assert f"0x{magic:08x}" in str(e.value)
    assert "truncated" not in str(e.value)


def test_read_idx_kind(tmp_path):
    img, lbl = _mnist_pair(tmp_path)
    assert read_idx(img, kind="images").shape == (3, 4, 4)
    assert read_idx(lbl, kind="labels").tolist() == [0, 1, 2]
    with pytest.raises(
        DataError, match="not an IDX labels file .*a 3-D array; labels files are 1-D"
    ):
        read_idx(img, kind="labels")
    with pytest.raises(ValueError, match="kind"):
        read_idx(img, kind="pictures")
