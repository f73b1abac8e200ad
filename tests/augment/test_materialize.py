import json

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.augment import BLOCK_SIZE, augment_batches, augment_to_dir
from tfsynth.augment.materialize import source_indices
from tfsynth.cli import main
from tfsynth.data import ImageDataset, load_dataset
from tfsynth.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def data():
    images, labels = make_arrays(40, 16, 16, 1, num_classes=4)
    return ImageDataset(images, labels, class_names=list("abcd"), name="tiny40")


def _collect(batches):
    batches = list(batches)
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}, batches


def test_source_indices_use_every_example_once_per_pass():
    idx = source_indices(10, 0, 30, seed=4)
    for p in range(3):
        assert sorted(idx[10 * p : 10 * (p + 1)]) == list(range(10))
    assert not np.array_equal(idx[:10], idx[10:20])  # a new order each pass
    np.testing.assert_array_equal(source_indices(10, 7, 23, seed=4), idx[7:23])


def test_augment_batches_columns_counts_and_provenance(data):
    cols, batches = _collect(augment_batches(data, "digits", 70, seed=1, batch_size=32))
    assert [len(b["label"]) for b in batches] == [32, 32, 6]
    assert set(cols) == {"image", "label", "source_index", "policy"}
    assert cols["image"].dtype == np.uint8 and cols["image"].shape == (70, 16, 16, 1)
    assert cols["label"].dtype == np.int64 and cols["source_index"].dtype == np.int64
    # labels are preserved: each label is its source's label
    np.testing.assert_array_equal(cols["label"], data.labels[cols["source_index"]])
    assert set(cols["policy"]) == {"fill:constant,rotate:10,translate:0.1,zoom:0.1,elastic:0.02"}
    # augmented, not copied
    assert not np.array_equal(cols["image"], data.images[cols["source_index"]])


def test_any_index_range_reproduces_the_full_run(data):
    # Ranges crossing block boundaries, with other batch sizes, match the
    # corresponding slice of one run: shards can be built independently.
    n = BLOCK_SIZE + 50
    full, _ = _collect(augment_batches(data, "digits,erase:0.5", n, seed=2, batch_size=64))
    for start, count, bs in [(BLOCK_SIZE - 5, 20, 7), (3, 10, 256), (BLOCK_SIZE, 50, 50)]:
        part, _ = _collect(
            augment_batches(data, "digits,erase:0.5", count, seed=2, start=start, batch_size=bs)
        )
        for k in full:
            np.testing.assert_array_equal(part[k], full[k][start : start + count])
    other, _ = _collect(augment_batches(data, "digits,erase:0.5", 20, seed=3, batch_size=64))
    assert not np.array_equal(other["image"], full["image"][:20])


def test_a_spec_is_one_policy_with_a_fresh_policys_output(data):
    # Fusion asks per class and shard; a new policy per call retraced each time.
    from tfsynth.augment.materialize import shared_policy
    from tfsynth.augment.policy import build_policy

    cached = shared_policy("rotate:15,erase:0.25", 4, data.num_classes)
    assert shared_policy({"rotate": 15, "erase": 0.25}, 4, data.num_classes) is cached
    assert shared_policy("rotate:15,erase:0.25", 5, data.num_classes) is not cached
    mine = build_policy("rotate:15,erase:0.25", seed=4, num_classes=data.num_classes)
    assert shared_policy(mine, 4, data.num_classes) is mine  # a policy object is used as given
    a, _ = _collect(augment_batches(data, "rotate:15,erase:0.25", 30, seed=4))
    b, _ = _collect(augment_batches(data, mine, 30, seed=4))
    np.testing.assert_array_equal(a["image"], b["image"])


def test_mixing_policy_gives_soft_labels(data):
    cols, _ = _collect(augment_batches(data, "mixup:0.4", 24, seed=0, batch_size=24))
    soft = cols["soft_label"]
    assert soft.shape == (24, 4) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(cols["label"], soft.argmax(axis=1))
    assert (soft.max(axis=1) < 1.0).any()  # some labels really are mixed


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"n": 0}, "n: expected"), ({"start": -1}, "start"), ({"batch_size": 0}, "batch_size")],
)
def test_augment_batches_rejects_bad_counts(data, kwargs, needle):
    args = {"n": 4, **kwargs}
    with pytest.raises(ConfigError, match=needle):
        next(augment_batches(data, "digits", args.pop("n"), **args))


def test_augment_to_dir_reloads_with_count_and_provenance(data, tmp_path):
    out, preview = tmp_path / "aug", tmp_path / "grid.png"
    manifest = augment_to_dir(
        data, "digits", 45, seed=0, out=out, preview=preview, examples_per_shard=20
    )
    assert manifest["num_examples"] == 45 and len(manifest["shards"]) == 3
    meta = manifest["metadata"]
    assert meta["label_mixing"] is False and meta["augment"]["policy"].startswith("fill:constant")
    ds = load_dataset(str(out))
    assert len(ds) == 45 and ds.shape == (16, 16, 1) and ds.class_names == list("abcd")
    expected, _ = _collect(augment_batches(data, "digits", 45, seed=0))
    np.testing.assert_array_equal(ds.images, expected["image"])
    np.testing.assert_array_equal(ds.extras["source_index"], expected["source_index"])
    assert {p.decode() for p in ds.extras["policy"]} == {meta["augment"]["policy"]}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "augment" and summary["num_examples"] == 45
    assert preview.stat().st_size > 0


def test_augment_to_dir_marks_label_mixing(data, tmp_path):
    out = tmp_path / "mix"
    manifest = augment_to_dir(data, "cutmix:1", 10, out=out)
    assert manifest["metadata"]["label_mixing"] is True
    assert manifest["features"]["soft_label"] == {"dtype": "float32", "shape": [4]}
    ds = load_dataset(str(out))
    np.testing.assert_allclose(ds.extras["soft_label"].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "policy, preview, err, needle",
    [
        ("rotate:500", None, ConfigError, "rotate must be in"),
        ("digits", "grid.jpg", ConfigError, "must be a .png"),
    ],
)
def test_augment_to_dir_bad_input_writes_nothing(data, tmp_path, policy, preview, err, needle):
    with pytest.raises(err, match=needle):
        augment_to_dir(data, policy, 5, out=tmp_path / "o", preview=preview and tmp_path / preview)
    assert listing(tmp_path) == []


def test_augment_to_dir_refuses_existing_output(data, tmp_path):
    (tmp_path / "o").mkdir()
    with pytest.raises((ConfigError, DataError), match="already exists"):
        augment_to_dir(data, "digits", 5, out=tmp_path / "o")
    assert listing(tmp_path) == ["o"]


@pytest.fixture
def npz_spec(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "d.npz"
    np.savez(path, images=data.images, labels=data.labels)
    return f"npz:{path}"


def test_cli_augment_writes_a_dataset_dir(npz_spec, tmp_path, capsys):
    out = tmp_path / "aug"
    rc = main(["augment", "--data", npz_spec, "--policy", "rotate:10,zoom:0.1", "-n", "12",
               "--out", str(out), "--preview", str(tmp_path / "p.png")])  # fmt: skip
    assert rc == 0 and "wrote 12 augmented images" in capsys.readouterr().out
    assert len(load_dataset(str(out))) == 12 and (tmp_path / "p.png").exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--policy", "spin:3"], "unknown op 'spin'"),
        (["--policy", "rotate:x"], "rotate needs a number"),
        (["-n", "0"], "num_examples: expected an integer >= 1"),
        (["--preview", "p.gif"], "must be a .png"),
    ],
)
def test_cli_augment_bad_input_exits_2_and_writes_nothing(
    npz_spec, tmp_path, capsys, extra, needle
):
    args = ["augment", "--data", npz_spec, "-n", "4", "--out", str(tmp_path / "o")]
    args += [str(tmp_path / a) if a.endswith(".gif") else a for a in extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert listing(tmp_path) == []
