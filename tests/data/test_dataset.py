import numpy as np
import pytest

from tests.conftest import make_arrays
from tfsynth.data import ImageDataset
from tfsynth.errors import DataError


def test_basic_properties(tiny_dataset):
    assert len(tiny_dataset) == 12
    assert tiny_dataset.shape == (16, 16, 1)
    assert tiny_dataset.num_classes == 3
    assert tiny_dataset.info()["class_counts"] == {"a": 4, "b": 4, "c": 4}


def test_grey_nhw_gets_channel_axis():
    ds = ImageDataset(np.zeros((3, 8, 8), np.uint8), [0, 1, 0])
    assert ds.shape == (8, 8, 1) and ds.class_names == ["0", "1"]


def test_float_images_in_unit_range_are_scaled():
    ds = ImageDataset(np.full((2, 4, 4, 1), 1.0, np.float32), [0, 0])
    assert ds.images.dtype == np.uint8 and ds.images.max() == 255


def test_nan_in_float_images():
    images = np.zeros((2, 4, 4, 1), np.float32)
    images[1, 2, 2, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ImageDataset(images, [0, 1], name="x")


def test_nan_in_float_labels():
    with pytest.raises(DataError, match="labels contain NaN"):
        ImageDataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0.0, np.nan]))


def test_count_mismatch():
    with pytest.raises(DataError, match="3 images but 2 labels"):
        ImageDataset(np.zeros((3, 4, 4, 1), np.uint8), [0, 1])


def test_labels_out_of_range():
    with pytest.raises(DataError, match="labels out of range: found 5 with 2 classes"):
        ImageDataset(np.zeros((2, 4, 4, 1), np.uint8), [0, 5], class_names=["a", "b"])
    with pytest.raises(DataError, match="labels out of range"):
        ImageDataset(np.zeros((2, 4, 4, 1), np.uint8), [0, -1])


def test_empty():
    with pytest.raises(DataError, match="empty"):
        ImageDataset(np.zeros((0, 4, 4, 1), np.uint8), np.zeros((0,), int))


def test_slicing_and_empty_slice(tiny_dataset):
    part = tiny_dataset[2:5]
    assert len(part) == 3
    np.testing.assert_array_equal(part.labels, tiny_dataset.labels[2:5])
    with pytest.raises(DataError, match="empty"):
        tiny_dataset[5:5]


def test_split_is_disjoint_and_seeded():
    images, labels = make_arrays(n=100)
    images[:, 0, 0, 0] = np.arange(100)  # a unique id per row
    ds = ImageDataset(images, labels)
    a, b, c = ds.split([0.6, 0.2, 0.2], seed=3)
    ids = [set(p.images[:, 0, 0, 0].tolist()) for p in (a, b, c)]
    assert [len(i) for i in ids] == [60, 20, 20]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    a2, _, _ = ds.split([0.6, 0.2, 0.2], seed=3)
    np.testing.assert_array_equal(a.images, a2.images)


def test_streamed_dataset_slices_without_loading():
    import tensorflow as tf

    images, labels = make_arrays(n=20)
    calls = []

    def stream(start, stop):
        calls.append((start, stop))
        return tf.data.Dataset.from_tensor_slices(
            {"image": images[start:stop], "label": labels[start:stop]}
        )

    ds = ImageDataset(
        stream=stream, num_examples=20, image_shape=(16, 16, 1), class_names=["a", "b", "c"]
    )
    assert ds.is_streamed
    part = ds[5:9]
    assert calls == [] and len(part) == 4
    np.testing.assert_array_equal(part.images, images[5:9])
    assert calls == [(5, 9)]
