import json
import os
import re
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


# -- curation (--min-confidence) and materialize ------------------------------------------


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """Two-class real data and cgan / dcgan run dirs with model.keras and classifier.keras."""
    from tests.test_curation import calibrated_classifier
    from tfsynth.models import build_model

    root = tmp_path_factory.mktemp("curated")
    images, labels = make_arrays(n=30, num_classes=2, seed=4)
    np.savez(root / "real.npz", images=images, labels=labels, class_names=np.array(["a", "b"]))
    runs = {}
    for name, k, seed in (("cgan", 2, 1), ("dcgan", 0, 2)):
        model = build_model(
            name, (16, 16, 1), num_classes=k, latent_dim=8, width=4, seed=seed,
            class_names=["a", "b"],
        )  # fmt: skip
        model.compile()
        (root / name).mkdir()
        model.save(root / name / "model.keras")
        clf, _ = calibrated_classifier(model)
        clf.save(root / name / "classifier.keras")
        runs[name] = (root / name, model, clf)
    return {"real": f"npz:{root / 'real.npz'}", "arrays": (images, labels), **runs}


def _curated_config(curated, model="cgan", **kw):
    cfg = dict(
        real=curated["real"], gen=str(curated[model][0]), counts="real=10,gen=16",
        class_target="match", seed=3, examples_per_shard=8, batch_size=4, min_confidence=0.8,
    )  # fmt: skip
    cfg.update(kw)
    return cfg


def _columns(ds):
    return {k: (v.astype(str) if v.dtype == object else v) for k, v in ds.extras.items()}


def test_curated_generator_keeps_confident_samples_with_exact_counts(tmp_path, curated):
    from tfsynth.evaluation.classifier import predict_proba
    from tfsynth.fusion.builder import FusionConfig, Layout
    from tfsynth.models.sampling import generate_at

    cfg = _curated_config(curated)
    manifest = build_fused(cfg, out=tmp_path / "d")
    ds = load_dataset(str(tmp_path / "d"))
    ex = _columns(ds)
    fusion = manifest["metadata"]["fusion"]
    gen = ex["source"] == "gen"
    assert np.bincount(ds.labels[gen], minlength=2).tolist() == fusion["counts"]["gen"]
    assert gen.sum() == 16 and manifest["num_examples"] == 26
    _, model, clf = curated["cgan"]
    probs = predict_proba(clf, ds.images[gen])
    assert probs.argmax(1).tolist() == ds.labels[gen].tolist()
    np.testing.assert_allclose(
        ex["confidence"][gen], probs[np.arange(16), ds.labels[gen]], rtol=1e-6
    )
    assert (ex["confidence"][gen] >= 0.8).all() and set(ex["confidence"][~gen]) == {-1.0}
    # Gen example j is generator example j + t * 16 with the label of seq[j].
    index = ex["gen_index"][gen]
    base, t = index % 16, index // 16
    assert sorted(base.tolist()) == list(range(16)) and t.sum() > 0
    seq = Layout(FusionConfig(**cfg).validate()).sources[1].seq
    assert ds.labels[gen].tolist() == seq[base].tolist()
    again = generate_at(model, index, ds.labels[gen], seed=3, batch_size=4)
    np.testing.assert_array_equal(again["image"], ds.images[gen])
    # The manifest and summary count the rejected candidates of every shard.
    src = fusion["sources"]["gen"]
    labels = ds.labels[gen]
    kept = np.bincount(labels, minlength=2)
    want = {
        n: int(kept[c]) / (int(kept[c]) + int(t[labels == c].sum())) for c, n in enumerate("ab")
    }
    assert src["min_confidence"] == 0.8 and src["num_rejected"] == int(t.sum())
    assert src["kept_fraction_per_class"] == want
    assert src["classifier"] == str(curated["cgan"][0] / "classifier.keras")
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["gen.kept_fraction"] == 16 / (16 + int(t.sum()))
    assert summary["gen.kept_fraction_per_class.b"] == want["b"]
    assert summary["config.min_confidence"] == 0.8


def test_curated_shards_built_separately_equal_one_build(tmp_path, curated):
    cfg = _curated_config(curated)
    one = build_fused(cfg, out=tmp_path / "one")
    for i in (3, 0, 2, 1):
        build_fused(cfg, out=tmp_path / "w", shard_index=i)
    merged = build_fused(cfg, out=tmp_path / "w", merge_only=True)
    assert (
        _shard_bytes(tmp_path / "w") == _shard_bytes(tmp_path / "one") and len(one["shards"]) == 4
    )
    assert merged["metadata"]["fusion"]["sources"] == one["metadata"]["fusion"]["sources"]
    assert merged["metadata"]["fusion"]["sources"]["gen"]["num_rejected"] > 0


def test_curated_materialize_rows_equal_build_fused_rows(tmp_path, curated):
    import hashlib

    from tfsynth.data import ImageDataset
    from tfsynth.fusion import materialize

    cfg = _curated_config(curated)
    one = build_fused(cfg, out=tmp_path / "one")
    written = load_dataset(str(tmp_path / "one"))
    mem = materialize(cfg)
    assert (
        hashlib.sha256(mem.images.tobytes()).hexdigest()
        == hashlib.sha256(written.images.tobytes()).hexdigest()
    )
    np.testing.assert_array_equal(mem.labels, written.labels)
    ex = _columns(written)
    assert set(mem.extras) == set(ex)
    for k, v in ex.items():
        np.testing.assert_array_equal(mem.extras[k], v, err_msg=k)
    assert mem.class_names == ["a", "b"]
    src = mem.metadata["fusion"]["sources"]["gen"]
    assert (
        src["kept_fraction_per_class"]
        == one["metadata"]["fusion"]["sources"]["gen"]["kept_fraction_per_class"]
    )
    # Objects where paths are: the real data as an ImageDataset, the classifier as a model.
    images, labels = curated["arrays"]
    real = ImageDataset(images, labels, class_names=["a", "b"], name="real")
    objects = materialize({**cfg, "real": real, "classifier": curated["cgan"][2]})
    np.testing.assert_array_equal(objects.images, written.images)
    np.testing.assert_array_equal(objects.labels, written.labels)
    np.testing.assert_array_equal(objects.extras["confidence"], ex["confidence"])


def test_materialize_equals_build_fused_for_data_sources(tmp_path, inputs):
    from tfsynth.fusion import materialize

    build_fused(_config(inputs), out=tmp_path / "d")
    written = load_dataset(str(tmp_path / "d"))
    mem = materialize(_config(inputs, num_shards=2))  # shards do not change the rows
    np.testing.assert_array_equal(mem.images, written.images)
    np.testing.assert_array_equal(mem.labels, written.labels)
    assert mem.extras["source"].tolist() == _columns(written)["source"].tolist()
    assert mem.metadata["fusion"]["source_totals"] == {"real": 45, "aug": 18, "gen": 27}


def test_unconditional_model_is_pseudo_labelled_by_the_classifier(tmp_path, curated):
    from tfsynth.evaluation.classifier import predict_proba

    cfg = _curated_config(curated, model="dcgan", min_confidence=0.7, class_target="uniform")
    manifest = build_fused(cfg, out=tmp_path / "d")
    ds = load_dataset(str(tmp_path / "d"))
    gen = _columns(ds)["source"] == "gen"
    probs = predict_proba(curated["dcgan"][2], ds.images[gen])
    assert ds.labels[gen].tolist() == probs.argmax(1).tolist()
    assert (probs.max(1) >= 0.7).all()
    assert manifest["class_counts"] == [13, 13]
    assert np.bincount(ds.labels[gen]).tolist() == manifest["metadata"]["fusion"]["counts"]["gen"]
    assert not manifest["metadata"]["fusion"]["sources"]["gen"]["conditional"]
    with pytest.raises(ConfigError, match="the model is unconditional"):
        build_fused({**cfg, "min_confidence": None}, out=tmp_path / "e")


def test_curation_config_errors(tmp_path, curated, inputs):
    from tests.test_curation import brightness_classifier

    cfg = _curated_config(curated)
    cases = [
        ({"min_confidence": 1.0}, ConfigError, "--min-confidence: expected a number in (0, 1)"),
        ({"min_confidence": 0}, ConfigError, "--min-confidence: expected a number in (0, 1)"),
        ({"gen": None, "counts": "real=10"}, ConfigError, "--min-confidence needs a --gen model"),
        ({"gen": inputs["gen"]}, ConfigError, "--min-confidence needs a --gen model"),
        ({"min_confidence": None, "classifier": "c.keras"}, ConfigError, "give both"),
        ({"classifier": str(tmp_path / "c.keras")}, DataError, "classifier file not found"),
        ({"classifier": 3}, ConfigError, "--classifier: expected the path"),
        ({"real": 3}, ConfigError, "--real: expected a dataset spec or an ImageDataset"),
        ({"classifier": brightness_classifier(centers=(-1, 0, 1))}, DataError, "3 classes"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            build_fused({**cfg, **change}, out=tmp_path / "d")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.keras").write_bytes((curated["cgan"][0] / "model.keras").read_bytes())
    with pytest.raises(DataError, match=re.escape(f"{bare / 'classifier.keras'}: classifier file")):
        build_fused({**cfg, "gen": str(bare)}, out=tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare"]


def test_config_with_objects_has_a_stable_fingerprint(curated):
    from tests.test_curation import brightness_classifier
    from tfsynth.data import ImageDataset
    from tfsynth.fusion import FusionConfig

    images, labels = curated["arrays"]

    def cfg(real_images, clf):
        real = ImageDataset(real_images, labels, class_names=["a", "b"], name="real")
        return FusionConfig(real=real, gen="m.keras", min_confidence=0.5, classifier=clf)

    a = cfg(images, brightness_classifier())
    assert a.fingerprint() == cfg(images.copy(), brightness_classifier()).fingerprint()
    assert a.fingerprint() != cfg(255 - images, brightness_classifier()).fingerprint()
    assert a.fingerprint() != cfg(images, brightness_classifier(scale=2.0)).fingerprint()
    config = json.loads(json.dumps(a.get_config()))
    assert config["real"].startswith("ImageDataset 'real' (30 examples, sha256 ")
    assert config["classifier"].startswith("keras.Model 'brightness' (weights sha256 ")


def test_a_curated_generated_directory_keeps_its_confidence(tmp_path, curated):
    from tfsynth.generation import generate

    generate(curated["cgan"][0], 8, seed=2, out=tmp_path / "g", curate=True, min_confidence=0.8)
    made = load_dataset(str(tmp_path / "g"))
    build_fused(real=curated["real"], gen=str(tmp_path / "g"), counts="real=4,gen=6",
                out=tmp_path / "d")  # fmt: skip
    ds = load_dataset(str(tmp_path / "d"))
    ex = _columns(ds)
    gen = ex["source"] == "gen"
    rows = ex["source_index"][gen]
    np.testing.assert_array_equal(ex["confidence"][gen], made.extras["confidence"][rows])
    np.testing.assert_array_equal(ex["gen_index"][gen], made.extras["gen_index"][rows])
    assert (ex["confidence"][gen] >= 0.8).all() and set(ex["confidence"][~gen]) == {-1.0}


def test_objects_where_paths_are_give_the_same_shards(tmp_path, inputs, curated):
    """An ImageDataset for --aug/--gen and a trainer for a --gen model build the same D'."""
    by_path = build_fused(_config(inputs), out=tmp_path / "p")
    objects = _config(inputs, aug=load_dataset(inputs["aug"]), gen=load_dataset(inputs["gen"]))
    by_object = build_fused(objects, out=tmp_path / "o")
    assert _shard_bytes(tmp_path / "p") == _shard_bytes(tmp_path / "o")
    assert by_path["class_counts"] == by_object["class_counts"]
    run_dir, model, clf = curated["cgan"]
    build_fused(_curated_config(curated), out=tmp_path / "gp")
    build_fused(_curated_config(curated, gen=model, classifier=clf), out=tmp_path / "go")
    assert _shard_bytes(tmp_path / "gp") == _shard_bytes(tmp_path / "go")
    with pytest.raises(ConfigError, match="curating a model object needs classifier="):
        build_fused(_curated_config(curated, gen=model), out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
