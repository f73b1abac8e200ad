import json

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.data import ImageDataset, load_dataset, read_manifest, write_dataset_dir
from tfsynth.data.records import verify_checksums
from tfsynth.errors import DataError


def test_round_trip_with_extras(tmp_path):
    images, labels = make_arrays(n=10)
    extras = {
        "source": np.array(["real"] * 5 + ["gen"] * 5),
        "source_index": np.arange(10),
        "soft_label": np.eye(3, dtype=np.float32)[labels],
    }
    ds = ImageDataset(images, labels, class_names=["a", "b", "c"], extras=extras)
    manifest = write_dataset_dir(tmp_path / "d", ds, examples_per_shard=4)
    assert [s["num_examples"] for s in manifest["shards"]] == [4, 4, 2]
    assert manifest["class_counts"] == [4, 3, 3]
    back = load_dataset(str(tmp_path / "d"))
    assert back.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(back.images, images)
    np.testing.assert_array_equal(back.extras["source_index"], extras["source_index"])
    assert back.extras["source"].tolist()[4:6] == [b"real", b"gen"]
    np.testing.assert_allclose(back.extras["soft_label"], extras["soft_label"])
    verify_checksums(tmp_path / "d")


def test_refuses_to_overwrite_and_leaves_nothing_on_failure(tmp_path, tiny_dataset, monkeypatch):
    write_dataset_dir(tmp_path / "d", tiny_dataset)
    with pytest.raises(DataError, match="already exists"):
        write_dataset_dir(tmp_path / "d", tiny_dataset)

    from tfsynth.data import records

    real = records.serialize_examples
    calls = []

    def failing(batch, features):
        calls.append(1)
        if len(calls) == 2:  # fail mid-way, after one batch was written
            raise OSError("disk full")
        return real(batch, features)

    monkeypatch.setattr(records, "serialize_examples", failing)
    before = listing(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        write_dataset_dir(tmp_path / "e", tiny_dataset, batch_size=2)
    assert listing(tmp_path) == before


def test_corrupt_manifest_and_missing_shard(tmp_path, tiny_dataset):
    write_dataset_dir(tmp_path / "d", tiny_dataset)
    m = tmp_path / "d" / "manifest.json"
    m.write_text("{not json")
    with pytest.raises(DataError, match="manifest.json: not valid JSON"):
        load_dataset(str(tmp_path / "d"))
    write_dataset_dir(tmp_path / "e", tiny_dataset)
    data = json.loads((tmp_path / "e" / "manifest.json").read_text())
    (tmp_path / "e" / data["shards"][0]["file"]).unlink()
    with pytest.raises(DataError, match="shard listed in manifest.json is missing"):
        read_manifest(tmp_path / "e")


def test_checksum_mismatch(tmp_path, tiny_dataset):
    write_dataset_dir(tmp_path / "d", tiny_dataset)
    shard = next((tmp_path / "d").glob("*.tfrecord"))
    raw = bytearray(shard.read_bytes())
    raw[40] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="checksum mismatch"):
        verify_checksums(tmp_path / "d")


def test_serialize_examples_matches_tf_train_example():
    import tensorflow as tf

    from tfsynth.data.records import serialize_examples

    n = 6
    images, labels = make_arrays(n=n)
    batch = {
        "image": images,
        "label": labels,
        "source": np.array(["real", "gen", "", "aug", "gen", "real"]),
        "index": np.array([0, 127, 128, 2**40, -1, -(2**63)]),
        "soft": np.random.default_rng(0).random((n, 3)).astype(np.float32),
        "pair": np.arange(2 * n).reshape(n, 2) - 3,
    }
    feature_spec = {
        "source": {"dtype": "string"},
        "index": {"dtype": "int64"},
        "soft": {"dtype": "float32"},
        "pair": {"dtype": "int64"},
    }
    records = serialize_examples(batch, feature_spec)
    for i, record in enumerate(records):
        f = tf.train.Feature
        want = tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image": f(bytes_list=tf.train.BytesList(value=[images[i].tobytes()])),
                    "label": f(int64_list=tf.train.Int64List(value=[labels[i]])),
                    "source": f(bytes_list=tf.train.BytesList(value=[batch["source"][i].encode()])),
                    "index": f(int64_list=tf.train.Int64List(value=[batch["index"][i]])),
                    "soft": f(float_list=tf.train.FloatList(value=batch["soft"][i])),
                    "pair": f(int64_list=tf.train.Int64List(value=batch["pair"][i])),
                }
            )
        )
        assert tf.train.Example.FromString(record) == want
    assert serialize_examples(batch, feature_spec) == records  # deterministic bytes
