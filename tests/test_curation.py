"""Curation: which samples the classifier keeps, the replacement rounds, pseudo-labels.

The classifiers here are hand-made: they predict from the mean pixel
brightness, so the test knows every probability (`brightness_proba`).
"""

import keras
import numpy as np
import pytest

from tfsynth.curation import (
    Curator,
    Resampler,
    check_min_confidence,
    kept_fractions,
    load_curator,
    replace_rejected,
)
from tfsynth.errors import ConfigError, DataError
from tfsynth.evaluation.classifier import predict_proba
from tfsynth.models import build_model
from tfsynth.models.sampling import generate_at, generate_batches

NAMES = ["a", "b"]


def brightness_classifier(offset=0.0, scale=1.0, centers=(-1.0, 1.0), sharpness=2.0, shape=None):
    """A keras classifier: logit_c = -sharpness * (z - centers[c])^2, z = (m - offset) / scale.

    m is the mean pixel of the [-1, 1] input; with two centers at -1 and 1,
    p(class 1) = sigmoid(4 * sharpness * z): bright images are class 1.
    """
    shape = shape or (16, 16, 1)
    c = np.asarray(centers, np.float32)
    inputs = keras.Input(shape)
    m = keras.layers.GlobalAveragePooling2D()(inputs)
    z = keras.layers.Dense(1, name="z")(m)
    x = keras.layers.Concatenate()([z, keras.layers.Multiply()([z, z])])
    out = keras.layers.Dense(len(c), activation="softmax", name="probs")(x)
    model = keras.Model(inputs, out, name="brightness")
    channels = shape[-1]
    model.get_layer("z").set_weights(
        [np.full((channels, 1), 1 / (scale * channels), np.float32), np.array([-offset / scale])]
    )
    w = np.stack([2 * sharpness * c, np.full_like(c, -sharpness)])
    model.get_layer("probs").set_weights([w, -sharpness * c**2])
    return model


def brightness_proba(images, offset=0.0, scale=1.0, centers=(-1.0, 1.0), sharpness=2.0):
    """NumPy reference of `brightness_classifier`'s probabilities."""
    m = (images.astype(np.float64) / 127.5 - 1.0).mean(axis=(1, 2, 3))
    z = (m - offset) / scale
    logits = -sharpness * (z[:, None] - np.asarray(centers)[None, :]) ** 2
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def calibrated_classifier(model, n=64, seed=0, sharpness=2.0):
    """A brightness classifier centred on `model`'s samples: about half are bright."""
    labels = np.arange(n) % 2 if model.num_classes else None
    images = next(generate_batches(model, n, labels=labels, seed=seed, batch_size=n))["image"]
    m = (images.astype(np.float64) / 127.5 - 1.0).mean(axis=(1, 2, 3))
    params = {"offset": float(np.median(m)), "scale": float(m.std()), "sharpness": sharpness}
    return brightness_classifier(**params), params


def constant_images(values, shape=(16, 16, 1)):
    return np.stack([np.full(shape, v, np.uint8) for v in values])


@pytest.fixture(scope="module")
def cgan():
    return build_model("cgan", (16, 16, 1), num_classes=2, latent_dim=8, width=4, seed=1)


def test_curator_keeps_the_predicted_label_above_the_threshold():
    clf = brightness_classifier(scale=0.1)
    images = constant_images([0, 100, 127, 128, 140, 200, 255])
    labels = np.array([0, 1, 0, 1, 1, 0, 1])
    keep, confidence = Curator(clf, 0.9)(images, labels)
    assert keep.tolist() == [True, False, False, False, True, False, True]
    assert confidence.dtype == np.float32
    ref = brightness_proba(images, scale=0.1)[np.arange(7), labels]
    np.testing.assert_allclose(confidence, ref, atol=1e-5)
    # The same probabilities as prediction; the last bit may differ where the
    # CPU's kernels depend on the batch (seen without AVX-512).
    np.testing.assert_allclose(
        confidence, predict_proba(clf, images)[np.arange(7), labels], rtol=1e-6, atol=0
    )
    # 127 and 128 sit near the boundary (p ~ 0.58): kept at 0.5 for their own side only.
    keep, _ = Curator(clf, 0.5)(images, labels)
    assert keep.tolist() == [True, False, True, True, True, False, True]


def test_curator_needs_the_label_to_be_the_most_probable_class():
    clf = brightness_classifier(centers=(-1.0, 0.0, 1.0), sharpness=0.5, scale=0.5)
    images = constant_images([40, 90, 127, 170, 220])
    probs = brightness_proba(images, centers=(-1.0, 0.0, 1.0), sharpness=0.5, scale=0.5)
    labels = np.array([1, 0, 2, 1, 2])
    keep, confidence = Curator(clf, 0.3)(images, labels)
    want = (probs.argmax(1) == labels) & (probs[np.arange(5), labels] >= 0.3)
    assert keep.tolist() == want.tolist()
    # Some rows clear the threshold with a label that is not the most probable class.
    assert ((confidence >= 0.3) & ~keep).any() and keep.any()


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, float("nan"), True, "0.5", None])
def test_min_confidence_must_lie_in_the_open_unit_interval(bad):
    with pytest.raises(ConfigError, match="--min-confidence: expected a number in"):
        check_min_confidence(bad)
    with pytest.raises(ConfigError, match="--min-confidence"):
        Curator(brightness_classifier(), bad)
    assert check_min_confidence(np.float32(0.25)) == 0.25


def test_load_curator_from_a_path_or_a_model(tmp_path):
    clf = brightness_classifier(scale=0.1)
    clf.save(tmp_path / "classifier.keras")
    images = constant_images([10, 130, 250])
    from_path = load_curator(tmp_path / "classifier.keras", 0.8)
    from_model = load_curator(clf, 0.8)
    assert from_path.name == str(tmp_path / "classifier.keras")
    for curator in (from_path, from_model):
        keep, confidence = curator(images, np.array([0, 0, 1]))
        assert keep.tolist() == [True, False, True]
    np.testing.assert_array_equal(from_path(images, [0, 0, 1])[1], from_model(images, [0, 0, 1])[1])

    missing = tmp_path / "nope" / "classifier.keras"
    with pytest.raises(DataError, match="classifier file not found") as e:
        load_curator(missing, 0.8)
    assert str(missing) in str(e.value) and "tfsynth train --val" in str(e.value)
    assert "--classifier" in str(e.value)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a loadable classifier") as e:
        load_curator(tmp_path / "junk.keras", 0.8)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="--min-confidence"):
        load_curator(missing, 2.0)  # the threshold is checked before the file


def test_replace_rejected_draws_each_round_in_one_call():
    accepted = {10, 61, 112, 163}  # row j accepts only candidate j + t * 50 for t = j - 10
    calls = []

    def check(images, labels):
        return np.isin(images, list(accepted)), {"confidence": images.astype(np.float32)}

    def regenerate(indices, labels):
        calls.append(indices.tolist())
        return {"image": indices.copy(), "label": labels, "gen_index": indices}

    batch = {
        "image": np.arange(10, 14),
        "label": np.array([0, 1, 0, 1]),
        "gen_index": np.arange(10, 14),
    }
    out, rejected = replace_rejected(
        batch, check, regenerate, stride=50, max_rounds=5, exhausted=lambda y, j: ValueError(y, j)
    )
    assert calls == [[61, 62, 63], [112, 113], [163]]
    assert out["gen_index"].tolist() == [10, 61, 112, 163] == out["image"].tolist()
    assert out["label"].tolist() == [0, 1, 0, 1] and rejected.tolist() == [0, 1, 2, 3]
    assert out["confidence"].tolist() == [10, 61, 112, 163]
    assert batch["gen_index"].tolist() == [10, 11, 12, 13]  # the input is not modified
    with pytest.raises(ValueError) as e:
        replace_rejected(batch, check, regenerate, stride=50, max_rounds=2, exhausted=ValueError)
    assert e.value.args == (1, 13)  # the label and example still rejected


def test_conditional_replacements_come_from_base_plus_t_n(cgan):
    clf, _ = calibrated_classifier(cgan)
    curator = Curator(clf, 0.8)
    n = 12
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0])
    r = Resampler(cgan, NAMES, seed=3, stride=n, curator=curator)
    out = _concat(r.batches(0, labels, 4))
    assert out["label"].tolist() == labels.tolist()
    assert out["gen_index"].tolist() != list(range(n))  # some were replaced ...
    base, t = out["gen_index"] % n, out["gen_index"] // n
    assert base.tolist() == list(range(n)) and (t == 0).any()  # ... and some were not
    for j in range(n):
        tries = np.arange(t[j] + 1) * n + j
        cand = generate_at(cgan, tries, np.full(len(tries), labels[j]), seed=3, batch_size=4)
        keep, conf = curator(cand["image"], cand["label"])
        assert keep.tolist() == [False] * t[j] + [True], j  # the first accepted candidate
        np.testing.assert_array_equal(out["image"][j], cand["image"][-1])
        assert out["confidence"][j] == conf[-1] >= 0.8
    assert r.rejected_per_class.tolist() == np.bincount(labels, weights=t).astype(int).tolist()
    assert r.kept_per_class.tolist() == [6, 6]
    rep = r.report()
    assert rep["kept_fraction_per_class"] == {
        name: 6 / (6 + int(t[labels == c].sum())) for c, name in enumerate(NAMES)
    }
    assert rep["min_confidence"] == 0.8 and rep["num_rejected"] == int(t.sum())
    # Shards (other ranges, another batch size) give the same rows.
    r2 = Resampler(cgan, NAMES, seed=3, stride=n, curator=curator)
    parts = [_concat(r2.batches(a, labels[a:b], 3)) for a, b in ((0, 5), (5, 12))]
    for k in out:
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), out[k])


def test_unconditional_labels_are_the_classifier_predictions():
    dcgan = build_model("dcgan", (16, 16, 1), latent_dim=8, width=4, seed=2)
    clf, _ = calibrated_classifier(dcgan)
    with pytest.raises(ConfigError, match="unconditional model needs a classifier"):
        Resampler(dcgan, NAMES, seed=0, stride=10)
    wanted = np.array([1, 1, 0, 1, 0, 0, 1, 0, 1, 1])
    r = Resampler(dcgan, NAMES, seed=0, stride=10, curator=Curator(clf, 0.7))
    assert r.max_rounds == 60
    out = _concat(r.batches(0, wanted, 4))
    probs = predict_proba(clf, out["image"])
    assert out["label"].tolist() == wanted.tolist() == probs.argmax(1).tolist()
    assert (probs.max(1) >= 0.7).all() and (out["gen_index"] >= 10).any()


def test_an_impossible_threshold_names_the_class(cgan):
    flat = brightness_classifier(sharpness=0.01)  # every probability is close to 0.5
    r = Resampler(cgan, NAMES, seed=0, stride=4, curator=Curator(flat, 0.9), where="m.keras")
    with pytest.raises(DataError, match="m.keras: the classifier rejects class 'b'") as e:
        list(r.batches(0, np.array([1, 0, 1, 0]), 4))
    assert "21 candidates in a row" in str(e.value) and "lower --min-confidence" in str(e.value)


def test_memorization_filter_and_curator_combine(cgan):
    clf, _ = calibrated_classifier(cgan)
    first = next(generate_batches(cgan, 8, labels=np.arange(8) % 2, seed=0, batch_size=8))
    banned = {first["image"][i].tobytes() for i in range(8)}  # every first candidate
    keep_fn = lambda images: np.array([im.tobytes() not in banned for im in images])  # noqa: E731
    r = Resampler(cgan, NAMES, seed=0, stride=8, curator=Curator(clf, 0.6), keep_fn=keep_fn)
    out = _concat(r.batches(0, np.arange(8) % 2, 8))
    assert (out["gen_index"] >= 8).all()  # no first candidate got through
    assert (out["confidence"] >= 0.6).all()
    assert r.report()["num_candidates"] == 8 + int((out["gen_index"] // 8).sum())


def test_kept_fractions():
    rep = kept_fractions([3, 1, 0], [1, 3, 0], ["a", "b", "c"])
    assert rep["kept_fraction"] == 0.5 and rep["num_candidates"] == 8
    assert rep["kept_fraction_per_class"] == {"a": 0.75, "b": 0.25, "c": None}
    assert rep["rejected_per_class"] == {"a": 1, "b": 3, "c": 0}


def _concat(batches):
    batches = list(batches)
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
