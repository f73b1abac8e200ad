"""generation.generate: dataset directories, curated (exact counts, confidence, kept fractions)."""

import json

import numpy as np
import pytest

from tests.conftest import listing
from tests.test_curation import brightness_classifier, calibrated_classifier
from tfsynth.data import load_dataset
from tfsynth.errors import ConfigError, DataError
from tfsynth.evaluation.classifier import predict_proba
from tfsynth.generation import generate
from tfsynth.models import build_model
from tfsynth.models.sampling import generate_at, generate_batches

NAMES = ["a", "b"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run directories of a cgan and a dcgan, each with model.keras and classifier.keras."""
    root = tmp_path_factory.mktemp("gen_runs")
    out = {}
    for name, k, seed in (("cgan", 2, 1), ("dcgan", 0, 2)):
        model = build_model(
            name, (16, 16, 1), num_classes=k, latent_dim=8, width=4, seed=seed,
            class_names=NAMES, class_counts=[3, 1],
        )  # fmt: skip
        model.compile()
        (root / name).mkdir()
        model.save(root / name / "model.keras")
        clf, _ = calibrated_classifier(model)
        clf.save(root / name / "classifier.keras")
        out[name] = (root / name, model, clf)
    return out


def _read(out):
    ds = load_dataset(str(out))
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return ds, summary, manifest


def test_curated_counts_exact_confidence_and_kept_fractions(runs, tmp_path):
    run, model, clf = runs["cgan"]
    n = 12
    m = generate(run, n, seed=3, out=tmp_path / "g", curate=True, min_confidence=0.8)
    ds, summary, manifest = _read(tmp_path / "g")
    assert m["class_counts"] == [6, 6] and ds.labels.tolist() == [0, 1] * 6  # uniform, exact
    assert manifest["features"]["confidence"] == {"dtype": "float32", "shape": []}
    conf, index = ds.extras["confidence"], ds.extras["gen_index"]
    assert conf.dtype == np.float32 and (conf >= 0.8).all()
    probs = predict_proba(clf, ds.images)
    assert probs.argmax(1).tolist() == ds.labels.tolist()
    np.testing.assert_allclose(conf, probs[np.arange(n), ds.labels], rtol=1e-6)
    # Row j is generator example j + t * n, t = its rejected candidates.
    assert (index % n).tolist() == list(range(n))
    t = index // n
    assert t.sum() > 0 and (t == 0).any()
    again = generate_at(model, index, ds.labels, seed=3, batch_size=8)
    np.testing.assert_array_equal(again["image"], ds.images)
    per_class = {name: 6 / (6 + int(t[ds.labels == c].sum())) for c, name in enumerate(NAMES)}
    assert summary["min_confidence"] == 0.8
    assert summary["kept_fraction"] == n / (n + int(t.sum()))
    assert {c: summary[f"kept_fraction_per_class.{c}"] for c in NAMES} == per_class
    assert summary["num_rejected"] == int(t.sum())
    curation = manifest["metadata"]["generator"]["curation"]
    assert curation["kept_fraction_per_class"] == per_class
    assert curation["classifier"] == str(run / "classifier.keras")


def test_curated_same_seed_same_bytes_any_batch_and_shard_size(runs, tmp_path):
    run, _, clf = runs["cgan"]
    kw = dict(seed=5, curate=True, min_confidence=0.7)
    generate(run, 10, out=tmp_path / "a", **kw)
    generate(run, 10, out=tmp_path / "b", **kw)
    shards = sorted(p.name for p in (tmp_path / "a").glob("*.tfrecord"))
    for name in shards:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    generate(run / "model.keras", 10, out=tmp_path / "c", batch_size=3, examples_per_shard=4,
             classifier=clf, **kw)  # fmt: skip
    a, c = load_dataset(str(tmp_path / "a")), load_dataset(str(tmp_path / "c"))
    np.testing.assert_array_equal(a.images, c.images)
    np.testing.assert_array_equal(a.labels, c.labels)
    for col in ("confidence", "gen_index"):
        np.testing.assert_array_equal(a.extras[col], c.extras[col])
    d = load_dataset(
        str(generate(run, 10, out=tmp_path / "d", **{**kw, "seed": 6}) and tmp_path / "d")
    )
    assert not np.array_equal(a.images, d.images)


def test_uncurated_output_is_unchanged(runs, tmp_path):
    run, model, _ = runs["cgan"]
    generate(run, 6, labels="1,0", seed=2, out=tmp_path / "g")
    ds, summary, manifest = _read(tmp_path / "g")
    assert set(manifest["features"]) == {"gen_seed", "gen_index"}
    assert "kept_fraction" not in summary and "curation" not in manifest["metadata"]["generator"]
    want = next(generate_batches(model, 6, labels=[1, 0] * 3, seed=2, batch_size=6))
    np.testing.assert_array_equal(ds.images, want["image"])
    assert ds.extras["gen_index"].tolist() == list(range(6))


def test_unconditional_model_gets_pseudo_labels_with_exact_counts(runs, tmp_path):
    run, _, clf = runs["dcgan"]
    m = generate(
        run, 8, labels="match", seed=1, out=tmp_path / "m", curate=True, min_confidence=0.7
    )
    ds, summary, manifest = _read(tmp_path / "m")
    assert m["class_counts"] == [6, 2]  # the training proportions 3:1
    probs = predict_proba(clf, ds.images)
    assert ds.labels.tolist() == probs.argmax(1).tolist()
    assert (probs.max(1) >= 0.7).all() and (ds.extras["gen_index"] >= 8).any()
    assert "classifier's predictions" in manifest["metadata"]["generator"]["note"]
    u = generate(run, 6, seed=1, out=tmp_path / "u", curate=True, min_confidence=0.7)
    assert u["class_counts"] == [3, 3]
    plain = generate(run, 4, seed=1, out=tmp_path / "p")
    assert plain["class_counts"] == [4, 0]  # without curation an unconditional model labels 0


def test_curated_bad_input_leaves_nothing(runs, tmp_path):
    run, _, _ = runs["cgan"]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigError, match="--min-confidence: expected a number in"):
        generate(run, 4, out=out / "g", curate=True, min_confidence=1.5)
    with pytest.raises(DataError, match="classifier file not found"):
        generate(run, 4, out=out / "g", curate=True, classifier=tmp_path / "none.keras")
    three = brightness_classifier(centers=(-1.0, 0.0, 1.0))
    with pytest.raises(DataError, match="the classifier has 3 classes"):
        generate(run, 4, out=out / "g", curate=True, classifier=three)
    flat = brightness_classifier(sharpness=0.01)
    with pytest.raises(DataError, match="the classifier rejects class 'a'"):
        generate(run, 4, out=out / "g", curate=True, classifier=flat)
    assert listing(out) == []


def test_training_still_exports_generate():
    import tfsynth
    import tfsynth.training

    assert tfsynth.training.generate is generate is tfsynth.generate


def test_a_trainer_object_generates_what_its_file_does(runs, tmp_path):
    run_dir, model, clf = runs["cgan"]
    generate(run_dir, 12, seed=4, out=tmp_path / "p", curate=True, min_confidence=0.6)
    generate(model, 12, seed=4, out=tmp_path / "o", curate=True, min_confidence=0.6, classifier=clf)
    (a, _, ma), (b, _, mb) = _read(tmp_path / "p"), _read(tmp_path / "o")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert ma["metadata"]["generator"]["model_path"] == str(run_dir)
    assert mb["metadata"]["generator"]["model_path"] == f"model {model.name!r}"
    with pytest.raises(ConfigError, match="curating a model object needs classifier="):
        generate(model, 4, out=tmp_path / "bad", curate=True)
    assert not (tmp_path / "bad").exists()
