import numpy as np
import pytest

from tests.conftest import make_arrays
from tfsynth.data import ImageDataset
from tfsynth.errors import ConfigError, DataError
from tfsynth.evaluation import features as F
from tfsynth.evaluation.classifier import build_classifier


@pytest.fixture
def small():
    images, labels = make_arrays(n=16, num_classes=2)
    return ImageDataset(images, labels, name="small")


def _fast_domain(train, **kw):
    # A tiny recipe: the cache and bookkeeping are under test here, not accuracy.
    return F.domain_extractor(
        train, epochs=1, batch_size=8, width=4, feature_dim=6, min_steps=0, **kw
    )


def test_domain_extractor_is_cached_per_content(small, tmp_path):
    ext = _fast_domain(small, test=small, cache_dir=tmp_path)
    info = ext.info()
    assert info["extractor"] == "domain-classifier" and info["extractor_dim"] == 6
    assert info["extractor_cached"] is False and 0 <= info["extractor_test_accuracy"] <= 1
    feats = ext(small.images)
    assert feats.shape == (16, 6) and feats.dtype == np.float32

    again = _fast_domain(small, cache_dir=tmp_path)
    assert again.info()["extractor_cached"] is True
    np.testing.assert_allclose(again(small.images), feats, rtol=1e-5, atol=1e-6)
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporaries left in the cache

    images, labels = small.numpy()
    changed = ImageDataset(images[::-1].copy(), labels, name="small")
    assert _fast_domain(changed, cache_dir=tmp_path).info()["extractor_cached"] is False
    assert len(list((tmp_path / "domain").iterdir())) == 2


def test_keras_layer_extractor_and_resize(tmp_path):
    model = build_classifier((16, 16, 3), 3, width=4, feature_dim=5)
    path = tmp_path / "m.keras"
    model.save(path)
    ext = F.build_extractor(f"keras:{path}:features")
    grey = np.zeros((3, 16, 16, 1), np.uint8)  # grey input is repeated to RGB
    assert ext(grey).shape == (3, 5) and ext.info()["extractor"] == "keras:m.keras:features"
    # Input of a different size is an error unless the extractor resizes.
    with pytest.raises(DataError, match="8x8 but the model expects 16x16"):
        ext(np.zeros((2, 8, 8, 3), np.uint8))
    resized = F.FeatureExtractor(model, "features", name="r", resize=(16, 16))
    assert resized(np.zeros((2, 8, 8, 3), np.uint8)).shape == (2, 5)


def test_bad_extractor_specs(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(
        ConfigError, match="InceptionV3 ImageNet weights not found; tfsynth does not"
    ):
        F.build_extractor("inception")
    with pytest.raises(ConfigError, match="expected auto, domain, inception"):
        F.build_extractor("resnet")
    with pytest.raises(ConfigError, match="extractor model file not found"):
        F.build_extractor(f"keras:{tmp_path}/none.keras:features")
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    with pytest.raises(ConfigError, match="bad.keras: not a loadable Keras model"):
        F.build_extractor(f"keras:{bad}:features")
    model = build_classifier((16, 16, 1), 3, width=4)
    with pytest.raises(ConfigError, match="has no layer 'nope'"):
        F.FeatureExtractor(model, "nope", name="x")
    with pytest.raises(ConfigError, match="needs the real training data"):
        F.build_extractor("domain")


def test_ssl_extractor(tmp_path):
    from tfsynth.selfsup import build_simclr

    model = build_simclr((16, 16, 1), width=2, feature_dim=6, projection_dim=2)
    model.compile()
    (tmp_path / "ssl").mkdir()
    model.save(tmp_path / "ssl" / "model.keras")
    ext = F.build_extractor(f"ssl:{tmp_path / 'ssl'}")
    assert ext(np.zeros((3, 16, 16, 1), np.uint8)).shape == (3, 6)
    assert ext.info()["extractor"] == "ssl:ssl"
    with pytest.raises(DataError, match="no SSL model here"):
        F.build_extractor(f"ssl:{tmp_path / 'none'}")
