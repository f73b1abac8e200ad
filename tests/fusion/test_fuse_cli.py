import json

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.cli import main
from tfsynth.data import ImageDataset, load_dataset, write_dataset_dir


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuse_cli")
    images, labels = make_arrays(n=30)
    np.savez(root / "real.npz", images=images, labels=labels)
    write_dataset_dir(root / "gen", ImageDataset(images[::-1], labels[::-1]))
    write_dataset_dir(
        root / "other_classes", ImageDataset(images, labels, class_names=["x", "y", "z"])
    )
    big, big_labels = make_arrays(n=30, h=8, w=8)
    write_dataset_dir(root / "other_shape", ImageDataset(big, big_labels))
    from tfsynth.models import build_model

    vae = build_model("vae", (16, 16, 1), latent_dim=4, width=4)
    vae.compile()
    vae.save(root / "vae.keras")
    return root


def test_fuse_shards_then_merge(tmp_path, data, capsys):
    args = ["fuse", "--real", f"npz:{data / 'real.npz'}", "--gen", data / "gen"]
    args += ["--num-shards", "2", "--out", tmp_path / "d"]
    rc, out, _ = run_cli(capsys, *args, "--shard-index", "1")
    assert rc == 0 and "wrote shard 1" in out and "1 of 2 shards done" in out
    rc, _, err = run_cli(capsys, *args, "--merge")
    assert rc == 2 and "shard(s) 0 of 2 are not built yet" in err
    rc, out, _ = run_cli(capsys, *args, "--shard-index", "0")
    assert rc == 0 and "2 of 2 shards done" in out
    rc, out, _ = run_cli(capsys, *args, "--merge")
    assert rc == 0 and "wrote 60 examples (real 30, gen 30)" in out
    ds = load_dataset(str(tmp_path / "d"))
    assert len(ds) == 60 and ds.class_counts().tolist() == [20, 20, 20]
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["source_totals.gen"] == 30
    # A different seed does not silently mix into an unfinished build.
    rc, _, _ = run_cli(capsys, *args[:-2], "--out", tmp_path / "e", "--shard-index", "0")
    assert rc == 0
    rc, _, err = run_cli(capsys, *args[:-2], "--out", tmp_path / "e", "--seed", "5")
    assert rc == 2 and "different config or seed" in err
    assert not (tmp_path / "e").exists()


BAD = [
    (["--ratios", "real=0.5,foo=0.5"], "unknown source 'foo'"),
    (["--ratios", "real=0.5,gen=0.5"], "no --gen was given"),
    (["--gen", "{d}/other_classes"], "class names"),
    (["--gen", "{d}/other_shape"], "images are (8, 8, 1)"),
    (["--gen", "{d}/gen", "--class-target", "zzz=1"], "unknown class 'zzz'"),
    (["--counts", "real=20", "--class-target", "0=1"], "class '0' needs 20 examples"),
    (["--counts", "real=40"], "asks for 40 examples but the source has only 30"),
    (["--num-shards", "2", "--shard-index", "5"], "--shard-index"),
    (["--format", "parquet"], "--format"),
    (["--merge"], "no unfinished build"),
    (["--gen", "{d}/vae.keras"], "unconditional"),
    (["--memorization-threshold", "1"], "needs a --gen source"),
    (["--aug", "{d}/gen", "--aug-policy", "flip:horizontal"], "at most one"),
    (["--real", "bogus"], "unknown dataset spec"),
    (["--gen", "{d}/missing"], "unknown dataset spec"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_fuse_bad_input_exits_2_one_line_nothing_written(tmp_path, data, capsys, case):
    extra, message = BAD[case]
    extra = [a.replace("{d}", str(data)) for a in extra]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    argv = ["fuse", "--real", f"npz:{data / 'real.npz'}", *extra, "--out", out_dir / "d"]
    if "--real" in extra:
        argv = ["fuse", *extra, "--out", out_dir / "d"]
    rc, _, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("tfsynth: error: "), err
    assert message in lines[0]
    assert listing(out_dir) == []


def test_fuse_refuses_existing_output(tmp_path, data, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    rc, _, err = run_cli(
        capsys, "fuse", "--real", f"npz:{data / 'real.npz'}", "--out", tmp_path / "d"
    )
    assert rc == 2 and "already exists" in err
    assert listing(tmp_path) == ["d", "d/keep"]
