"""Unlabelled data: npz without labels, a folder without class sub-folders, --unlabeled."""

import json

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.cli import main
from tfsynth.data import ImageDataset, load_dataset, write_dataset_dir
from tfsynth.errors import DataError


def _cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_npz_without_labels_is_unlabelled(tmp_path):
    images, _ = make_arrays(n=6)
    np.savez(tmp_path / "u.npz", images=images)
    ds = load_dataset(f"npz:{tmp_path / 'u.npz'}")
    assert not ds.labeled and ds.num_classes == 0 and len(ds) == 6
    assert ds.info()["labels"] == "unlabelled" and ds.info()["class_counts"] == {}
    assert not ds[2:4].labeled and not ds.split([0.5], seed=0)[0].labeled
    x, y = next(iter(ds.to_tf_dataset(batch_size=3, shuffle=False)))
    assert x.shape == (3, 16, 16, 1)


def test_folder_of_images_is_unlabelled(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("L", (16, 16), color=i * 50).save(tmp_path / f"img{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert not ds.labeled and ds.is_streamed and len(ds) == 3
    assert ds.images.shape == (3, 16, 16, 1)
    assert sorted(np.unique(ds.images).tolist()) == [0, 50, 100]


def test_unlabeled_flag_and_dataset_dir_round_trip(tmp_path):
    ds = load_dataset("mnist-10k[:20]", unlabeled=True)
    assert not ds.labeled and ds.num_classes == 0
    write_dataset_dir(tmp_path / "d", ds)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["labeled"] is False and manifest["class_names"] == []
    back = load_dataset(str(tmp_path / "d"))
    assert not back.labeled and back.images.shape == (20, 28, 28, 1)
    labelled = ImageDataset(*make_arrays(n=4))
    assert labelled.labeled and labelled.without_labels().num_classes == 0


def test_data_info_says_unlabelled(tmp_path, capsys):
    images, _ = make_arrays(n=5)
    np.savez(tmp_path / "u.npz", images=images)
    rc, out, _ = _cli(capsys, "data", "info", f"npz:{tmp_path / 'u.npz'}")
    assert rc == 0 and "5 images, shape 16x16x1, unlabelled" in out
    rc, out, _ = _cli(capsys, "data", "info", "mnist-10k[:10]", "--unlabeled", "--json")
    assert rc == 0 and json.loads(out)["labels"] == "unlabelled"
    rc, _, _ = _cli(
        capsys, "data", "convert", f"npz:{tmp_path / 'u.npz'}", "--out", str(tmp_path / "c.npz")
    )
    assert rc == 0 and not load_dataset(f"npz:{tmp_path / 'c.npz'}").labeled


def test_require_labels():
    ds = ImageDataset(np.zeros((2, 8, 8, 1), np.uint8), name="u")
    with pytest.raises(DataError, match="u: the dataset is unlabelled; x needs labelled images"):
        ds.require_labels("x")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--model", "cgan", "--steps", "1", "--batch-size", "4", "--quiet", "--data"],
        ["fuse", "--aug-policy", "digits", "--counts", "real=4,aug=4", "--real"],
        ["evaluate", "--extractor", "domain", "--synthetic", "mnist-10k[:4]", "--real"],
    ],
    ids=["train-cgan", "fuse", "evaluate"],
)
def test_commands_that_need_labels_fail_in_one_line(tmp_path, capsys, argv):
    images, _ = make_arrays(n=8, h=28, w=28)
    np.savez(tmp_path / "u.npz", images=images)
    out = tmp_path / "out"
    rc, _, err = _cli(capsys, *argv, f"npz:{tmp_path / 'u.npz'}", "--out", str(out))
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "unlabelled" in lines[0], err
    assert not out.exists() and listing(tmp_path) == ["u.npz"]
