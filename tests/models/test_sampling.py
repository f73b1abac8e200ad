"""Seed-derived sampling: requested labels, shard independence, determinism."""

import numpy as np
import pytest

from tfsynth.errors import ConfigError
from tfsynth.models import build_model
from tfsynth.models.sampling import generate_batches, matched_labels, noise_for


@pytest.fixture(scope="module")
def cgan():
    return build_model("cgan", (16, 16, 1), num_classes=4, latent_dim=8, width=4, seed=0)


def _collect(model, n, **kw):
    batches = list(generate_batches(model, n, **kw))
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_conditional_generation_returns_requested_labels(cgan):
    want = np.array([3, 0, 0, 2, 1, 3, 3])
    out = _collect(cgan, 7, labels=want, batch_size=3)
    np.testing.assert_array_equal(out["label"], want)
    assert out["image"].shape == (7, 16, 16, 1) and out["image"].dtype == np.uint8
    assert out["label"].dtype == np.int64 and out["gen_index"].tolist() == list(range(7))
    # The label reaches the generator: same noise, different class, different image.
    a = _collect(cgan, 1, labels=[0])["image"]
    b = _collect(cgan, 1, labels=[3])["image"]
    assert not np.array_equal(a, b)


def test_uniform_and_short_label_lists(cgan):
    assert _collect(cgan, 6)["label"].tolist() == [0, 1, 2, 3, 0, 1]
    assert _collect(cgan, 5, labels="1,2")["label"].tolist() == [1, 2, 1, 2, 1]


def test_shards_match_one_run(cgan):
    whole = _collect(cgan, 20, seed=5, batch_size=8)
    part = _collect(cgan, 9, seed=5, start=11, batch_size=4)
    np.testing.assert_array_equal(part["image"], whole["image"][11:])
    np.testing.assert_array_equal(part["gen_index"], np.arange(11, 20))
    assert (part["gen_seed"] == 5).all()
    other = _collect(cgan, 20, seed=6, batch_size=8)
    assert not np.array_equal(other["image"], whole["image"])


def test_noise_depends_only_on_seed_and_index():
    a = noise_for(1, [5, 6, 7], 4)
    np.testing.assert_array_equal(noise_for(1, [7], 4)[0], a[2])
    assert not np.allclose(noise_for(2, [7], 4)[0], a[2])
    # across noise blocks, in any order and with repeats
    full = noise_for(1, np.arange(200), 4)
    picked = noise_for(1, [130, 63, 64, 7, 130], 4)
    np.testing.assert_array_equal(picked, full[[130, 63, 64, 7, 130]])
    assert abs(full.mean()) < 0.15 and abs(full.std() - 1) < 0.1
    assert len(np.unique(full[:, 0])) == 200  # no two rows share noise


def test_unconditional_gets_label_zero():
    m = build_model("dcgan", (16, 16, 1), latent_dim=8, width=4)
    assert _collect(m, 3)["label"].tolist() == [0, 0, 0]


def test_matched_labels_proportions():
    lab = matched_labels(10, [30, 10, 60], seed=0)
    assert np.bincount(lab, minlength=3).tolist() == [3, 1, 6]


@pytest.mark.parametrize(
    "labels, match",
    [
        ("a,b", "comma-separated"),
        ([0, 9], "must lie in"),
        (np.zeros((2, 2), int), "1-D"),
        ([0] * 5, "5 labels for 3"),
    ],
)
def test_bad_labels(cgan, labels, match):
    with pytest.raises(ConfigError, match=match):
        _collect(cgan, 3, labels=labels)
