import numpy as np
import pytest

from tests.conftest import make_arrays
from tests.evaluation.conftest import separable
from tfsynth.data import ImageDataset
from tfsynth.errors import ConfigError, DataError
from tfsynth.evaluation.classifier import (
    accuracy,
    build_classifier,
    predict_labels,
    reuse_compiled,
    train_classifier,
    train_classifiers,
)


def test_build_is_seeded_and_has_a_feature_layer():
    a = build_classifier((16, 16, 3), 4, width=4, feature_dim=8, seed=1)
    b = build_classifier((16, 16, 3), 4, width=4, feature_dim=8, seed=1)
    c = build_classifier((16, 16, 3), 4, width=4, feature_dim=8, seed=2)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    assert a.get_layer("features").output.shape == (None, 8)
    assert a.output_shape == (None, 4)


def test_train_learns_and_is_reproducible():
    ds = separable()
    m1 = train_classifier(ds, epochs=3, seed=0, batch_size=8, width=4)
    m2 = train_classifier(ds, epochs=3, seed=0, batch_size=8, width=4)
    assert accuracy(m1, ds) == 1.0
    np.testing.assert_allclose(m1.get_weights()[0], m2.get_weights()[0], atol=1e-5)
    pred = predict_labels(m1, ds.images)
    assert pred.dtype == np.int64 and pred.shape == (len(ds),)


def test_models_trained_together_equal_models_trained_alone():
    # Side by side in one loop, each model still sees only its own data,
    # seed and optimizer: the results are those of separate trainings.
    a, b = separable(seed=0), separable(seed=1, flip=True)
    args = dict(epochs=2, batch_size=8, width=4)
    together = train_classifiers([a, b], seeds=[3, 4], **args)
    for ds, seed, model in zip((a, b), (3, 4), together):
        alone = train_classifier(ds, seed=seed, **args)
        for want, got in zip(alone.get_weights(), model.get_weights()):
            np.testing.assert_allclose(got, want, atol=1e-6)
    assert accuracy(together[1], b) == 1.0  # it learned the flipped labels, not a's
    with pytest.raises(ConfigError, match="one seed per dataset"):
        train_classifiers([a, b], seeds=[0], **args)


def test_reused_loop_trains_exactly_like_a_fresh_one():
    # The second training in the block starts from the first one's trained
    # weights, Adam slots, step count and dropout seeds: all must be reset.
    ds = separable()
    args = dict(epochs=2, batch_size=8, width=4)
    fresh = [w.copy() for w in train_classifier(ds, seed=1, **args).get_weights()]
    with reuse_compiled():
        first = train_classifier(ds, seed=0, **args)
        second = train_classifier(ds, seed=1, **args)
        assert second is first  # one traced loop for the recipe
        for want, got in zip(fresh, second.get_weights()):
            np.testing.assert_array_equal(want, got)
        other = train_classifier(ds, seed=1, epochs=3, batch_size=8, width=4)
        assert other is not first  # another step budget is another recipe
        pair = train_classifiers(ds, seeds=[0, 1], **args)
        assert pair[0] is not first  # two models are another loop
    assert train_classifier(ds, seed=1, **args) is not first  # the block is closed


def test_soft_labels_are_used_as_targets():
    images, labels = make_arrays(n=8, num_classes=2)
    soft = np.eye(2, dtype=np.float32)[labels] * 0.8 + 0.1
    ds = ImageDataset(images, labels, extras={"soft_label": soft})
    train_classifier(ds, epochs=1, batch_size=4, width=4)
    bad = ImageDataset(images, labels, name="bad", extras={"soft_label": soft[:, :1]})
    with pytest.raises(DataError, match="bad: soft_label has shape"):
        train_classifier(bad, epochs=1, batch_size=4, width=4)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="num_classes must be >= 2"):
        build_classifier((16, 16, 1), 1)
    with pytest.raises(ConfigError, match="image_shape"):
        build_classifier((16, 16), 3)
    with pytest.raises(ConfigError, match="epochs"):
        train_classifier(separable(), epochs=0)
    m = build_classifier((16, 16, 1), 2, width=4)
    with pytest.raises(DataError, match="uint8"):
        predict_labels(m, np.zeros((2, 16, 16, 1), np.float32))


def test_datasets_trained_together_must_match():
    args = dict(seeds=[0, 1], epochs=1, batch_size=4, width=4)
    with pytest.raises(DataError, match="big: images are 32x32x1 but sep has 16x16x1"):
        train_classifiers([separable(), separable(name="big", size=32)], **args)
    with pytest.raises(DataError, match="sep: has 2 classes, expected 3"):
        train_classifiers(separable(), num_classes=3, **args)
