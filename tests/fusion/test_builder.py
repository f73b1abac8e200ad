import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.data import ImageDataset, load_dataset, write_dataset_dir
from tfsynth.errors import ConfigError, DataError
from tfsynth.fusion import build_fused
from tfsynth.fusion.plan import apportion

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Imbalanced real data (npz), an 'aug' and a 'gen' dataset dir with provenance."""
    root = tmp_path_factory.mktemp("inputs")
    images, _ = make_arrays(n=60, seed=1)
    labels = np.array([0] * 36 + [1] * 18 + [2] * 6)
    np.savez(root / "real.npz", images=images, labels=labels, class_names=np.array(NAMES))
    g_images, g_labels = make_arrays(n=90, seed=2)
    gen = ImageDataset(
        g_images,
        g_labels,
        class_names=NAMES,
        extras={
            "gen_seed": np.full(90, 11),
            "gen_index": np.arange(90) + 1000,
            "model_id": np.array(["m0del"] * 90),
        },
    )
    write_dataset_dir(root / "gen", gen, examples_per_shard=40)
    a_images, a_labels = make_arrays(n=50, seed=3)
    aug = ImageDataset(
        a_images, a_labels, class_names=NAMES, extras={"policy": np.array(["flip"] * 50)}
    )
    write_dataset_dir(root / "aug", aug, examples_per_shard=50)
    return {
        "real": f"npz:{root / 'real.npz'}",
        "gen": str(root / "gen"),
        "aug": str(root / "aug"),
        "arrays": (images, labels, g_images, a_images),
    }


def _config(inputs, **kw):
    cfg = dict(
        real=inputs["real"],
        aug=inputs["aug"],
        gen=inputs["gen"],
        ratios="real=0.5,aug=0.2,gen=0.3",
        size=90,
        class_target="uniform",
        seed=3,
        examples_per_shard=20,
        batch_size=8,
    )
    cfg.update(kw)
    return cfg


def _shard_bytes(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.tfrecord"))}


def test_counts_exact_and_every_example_has_provenance(tmp_path, inputs):
    manifest = build_fused(_config(inputs), out=tmp_path / "d")
    fusion = manifest["metadata"]["fusion"]
    assert fusion["source_totals"] == {"real": 45, "aug": 18, "gen": 27}
    assert apportion(90, [0.5, 0.2, 0.3]).tolist() == [45, 18, 27]
    assert manifest["class_counts"] == [30, 30, 30]  # uniform, although real is 36/18/6
    assert len(manifest["shards"]) == 5 and all(s["sha256"] for s in manifest["shards"])

    ds = load_dataset(str(tmp_path / "d"))
    images, labels = ds.numpy()
    ex = {k: (v.astype(str) if v.dtype == object else v) for k, v in ds.extras.items()}
    assert set(ex) == {
        "source", "source_index", "gen_seed", "gen_index", "model_id", "policy", "confidence",
    }  # fmt: skip
    assert ex["confidence"].dtype == np.float32 and set(ex["confidence"]) == {-1.0}
    # Per-source, per-class counts read back from the data equal the plan.
    for src, row in fusion["counts"].items():
        got = np.bincount(labels[ex["source"] == src], minlength=3).tolist()
        assert got == row, src
    assert np.bincount(labels).tolist() == [30, 30, 30]

    real_images, real_labels, gen_images, aug_images = inputs["arrays"]
    real = ex["source"] == "real"
    idx = ex["source_index"][real]
    assert len(set(idx.tolist())) == len(idx)  # each real row at most once
    np.testing.assert_array_equal(images[real], real_images[idx])
    np.testing.assert_array_equal(labels[real], real_labels[idx])
    assert set(ex["gen_index"][real]) == {-1} and set(ex["model_id"][real]) == {""}
    gen = ex["source"] == "gen"
    np.testing.assert_array_equal(images[gen], gen_images[ex["source_index"][gen]])
    np.testing.assert_array_equal(ex["gen_index"][gen], ex["source_index"][gen] + 1000)
    assert set(ex["gen_seed"][gen]) == {11} and set(ex["model_id"][gen]) == {"m0del"}
    aug = ex["source"] == "aug"
    np.testing.assert_array_equal(images[aug], aug_images[ex["source_index"][aug]])
    assert set(ex["policy"][aug]) == {"flip"}
    # The sources are interleaved (global shuffle), not concatenated.
    assert len(np.flatnonzero(np.diff(real.astype(int)))) > 10
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["command"] == "fuse" and summary["num_examples"] == 90


def test_same_seed_byte_identical_and_workers_plus_merge_agree(tmp_path, inputs):
    build_fused(_config(inputs), out=tmp_path / "a" / "d")
    build_fused(_config(inputs), out=tmp_path / "b" / "d")
    a, b = _shard_bytes(tmp_path / "a" / "d"), _shard_bytes(tmp_path / "b" / "d")
    assert a == b and len(a) == 5
    assert (tmp_path / "a/d/manifest.json").read_bytes() == (
        tmp_path / "b/d/manifest.json"
    ).read_bytes()
    # Independent workers, in any order, then a merge: the same bytes.
    for i in (4, 1, 0, 3, 2):
        r = build_fused(_config(inputs), out=tmp_path / "w" / "d", shard_index=i)
        assert r["num_shards"] == 5
    assert not (tmp_path / "w" / "d").exists()
    with pytest.raises(DataError, match="already exists"):
        build_fused(_config(inputs), out=tmp_path / "a" / "d")
    build_fused(_config(inputs), out=tmp_path / "w" / "d", merge_only=True)
    assert _shard_bytes(tmp_path / "w" / "d") == a
    assert listing(tmp_path / "w") == sorted(
        ["d", "d/summary.json", "d/manifest.json", *(f"d/{n}" for n in a)]
    )
    build_fused(_config(inputs, seed=4), out=tmp_path / "c" / "d")
    assert _shard_bytes(tmp_path / "c" / "d") != a


KILL_SCRIPT = """
import sys, time
from tfsynth.data import records
from tfsynth.fusion import builder
real = records.write_shard
def slow(*a, **k):
    entry = real(*a, **k)
    time.sleep(0.4)
    return entry
builder.write_shard = slow
builder.build_fused(**{cfg}, out=sys.argv[1])
"""


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_bytes(tmp_path, inputs):
    cfg = _config(inputs, examples_per_shard=10)  # 9 shards
    out = tmp_path / "k" / "d"
    staging = tmp_path / "k" / ".d.partial"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT.replace("{cfg}", repr(cfg)), str(out)], env=env
    )
    deadline = time.time() + 120
    while len(list(staging.glob("*.tfrecord.json"))) < 3 and time.time() < deadline:
        assert proc.poll() is None, "the build ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    done = len(list(staging.glob("*.tfrecord.json")))
    assert 3 <= done < 9

    from tfsynth.fusion import builder

    calls = []
    real_write = builder._write_one_shard
    builder._write_one_shard = lambda layout, st, k: calls.append(k) or real_write(layout, st, k)
    try:
        build_fused(cfg, out=out)
    finally:
        builder._write_one_shard = real_write
    assert len(calls) == 9 - done  # finished shards were not rebuilt
    build_fused(cfg, out=tmp_path / "u" / "d")
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "u" / "d")
    assert not staging.exists()
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["d"]  # no temporaries left


@pytest.mark.slow
def test_tfds_format_reloads(tmp_path, inputs):
    import tensorflow_datasets as tfds

    build_fused(_config(inputs, format="tfds"), out=tmp_path / "t")
    build_fused(_config(inputs), out=tmp_path / "r")
    ref = load_dataset(str(tmp_path / "r"))
    back = load_dataset(str(tmp_path / "t"))
    np.testing.assert_array_equal(back.images, ref.images)
    np.testing.assert_array_equal(back.labels, ref.labels)
    assert back.class_names == NAMES
    assert back.extras["source"].tolist() == ref.extras["source"].tolist()
    fused = json.loads((tmp_path / "t" / "fusion.json").read_text())
    builder = tfds.builder_from_directory(str(tmp_path / "t" / fused["tfds_dir"]))
    assert builder.info.splits["train"].num_examples == 90
    first = next(iter(builder.as_dataset(split="train")))
    assert set(first) >= {"image", "label", "source", "source_index", "model_id", "policy"}
    np.testing.assert_array_equal(first["image"].numpy(), ref.images[0])


def test_generator_and_policy_on_the_fly(tmp_path, inputs):
    from tfsynth.models import build_model, model_id

    m = build_model("cgan", (16, 16, 1), num_classes=3, latent_dim=8, width=4)
    m.compile()
    m.save(tmp_path / "model.keras")
    cfg = _config(
        inputs, aug=None, aug_policy="flip:horizontal", gen=str(tmp_path / "model.keras"),
        ratios="real=0.4,aug=0.3,gen=0.3", class_target="a=1,c=2", size=60,
    )  # fmt: skip
    manifest = build_fused(cfg, out=tmp_path / "d")
    ds = load_dataset(str(tmp_path / "d"))
    ex = {k: (v.astype(str) if v.dtype == object else v) for k, v in ds.extras.items()}
    assert manifest["class_counts"] == [20, 0, 40]
    for src, row in manifest["metadata"]["fusion"]["counts"].items():
        assert np.bincount(ds.labels[ex["source"] == src], minlength=3).tolist() == row
    gen = ex["source"] == "gen"
    assert gen.sum() == 18 and set(ex["model_id"][gen]) == {model_id(m)}
    assert set(ex["gen_seed"][gen]) == {3}
    # Gen example j of D' is generator example j: regenerate it from its provenance.
    from tfsynth.models.sampling import generate_batches

    j = int(ex["gen_index"][gen][5])
    again = next(generate_batches(m, 1, labels=[ds.labels[gen][5]], seed=3, start=j, batch_size=8))
    np.testing.assert_array_equal(again["image"][0], ds.images[gen][5])
    aug = ex["source"] == "aug"
    real_images, real_labels = inputs["arrays"][:2]
    spec = manifest["metadata"]["fusion"]["sources"]["aug"]["policy"]
    assert "flip" in spec and set(ex["policy"][aug]) == {spec}
    np.testing.assert_array_equal(ds.labels[aug], real_labels[ex["source_index"][aug]])
    # Two shard-wise builds agree (on-the-fly sources are index-deterministic).
    for i in range(3):
        build_fused(cfg, out=tmp_path / "w", shard_index=i)
    build_fused(cfg, out=tmp_path / "w", merge_only=True)
    assert _shard_bytes(tmp_path / "w") == _shard_bytes(tmp_path / "d")


def test_memorization_filter_drops_copies_of_real_images(tmp_path, inputs):
    real_images, real_labels = inputs["arrays"][:2]
    noisy, _ = make_arrays(n=30, seed=9)
    copies = ImageDataset(
        np.concatenate([real_images[:30], noisy]),
        np.concatenate([real_labels[:30], np.arange(30) % 3]),
        class_names=NAMES,
    )
    write_dataset_dir(tmp_path / "copies", copies)
    cfg = _config(
        inputs, aug=None, gen=str(tmp_path / "copies"), ratios=None,
        counts="real=10,gen=20", size=None, class_target="match",
        memorization_threshold=1.0,
    )  # fmt: skip
    build_fused(cfg, out=tmp_path / "d")
    ds = load_dataset(str(tmp_path / "d"))
    gen_rows = ds.extras["source_index"][ds.extras["source"] == b"gen"]
    assert len(gen_rows) == 20 and gen_rows.min() >= 30  # no copy got through
    with pytest.raises(ConfigError, match="asks for 40 examples but the source has only 30"):
        build_fused({**cfg, "counts": "gen=40"}, out=tmp_path / "e")


def test_overwrite_replaces_a_finished_build(tmp_path, inputs):
    cfg = _config(inputs, aug=None, gen=None, ratios=None, counts="real=20", size=None)
    build_fused(cfg, out=tmp_path / "d")
    first = _shard_bytes(tmp_path / "d")
    build_fused({**cfg, "seed": 9}, out=tmp_path / "d", overwrite=True)
    assert _shard_bytes(tmp_path / "d") != first
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
