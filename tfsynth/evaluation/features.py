"""Feature extractors: images (uint8 NHWC) -> feature vectors for the metrics.

Chosen with one spec string (`build_extractor`):

- ``"auto"`` (the default): ``"domain"`` when the real training data is
  labelled; else a `tfsynth ssl` encoder trained on its images (labels
  unused), cached like the domain classifier (`trained_ssl_extractor`),
  whose `info()` carries a one-line ``extractor_note`` saying so.
- ``"domain"``: the fixed classifier of
  `tfsynth.evaluation.classifier` trained on the *real training split*;
  features are its penultimate ``"features"`` layer. ImageNet Inception
  features mean little on MNIST-like data, so this is the meaningful
  default. The trained model is cached per dataset content hash (and
  recipe) under the cache directory, and its test accuracy is recorded,
  because a feature space is only as good as the classifier behind it.
- ``"inception"`` or ``"inception:WEIGHTS.h5"``: InceptionV3 pooled features
  (2048-d, 299x299 input), only where the ImageNet weights file is already
  on disk (``$KERAS_HOME/models``); tfsynth never downloads it.
- ``"keras:MODEL.keras:LAYER"``: any Keras model file plus a layer name.
- ``"ssl:DIR"``: the "features" layer of a `tfsynth ssl` encoder, trained
  without labels (`tfsynth.selfsup`).

Every extractor reports its name and settings through `info()`, so each
metric states which features it was computed on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tfsynth.data.dataset import ImageDataset
from tfsynth.errors import ConfigError, DataError
from tfsynth.evaluation.classifier import (
    DEFAULT_EPOCHS,
    FEATURE_LAYER,
    accuracy,
    train_classifier,
)

# Bump when the domain classifier (or SSL) recipe changes, so old cache entries are not reused.
DOMAIN_RECIPE_VERSION = 2
SSL_RECIPE_VERSION = 1
INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
EXTRACTOR_HELP = (
    "expected auto, domain, inception, inception:WEIGHTS.h5, keras:MODEL.keras:LAYER or ssl:DIR"
)


def default_cache_dir() -> Path:
    """``$TFSYNTH_CACHE_DIR``, else ``$XDG_CACHE_HOME/tfsynth``, else ``~/.cache/tfsynth``."""
    if os.environ.get("TFSYNTH_CACHE_DIR"):
        return Path(os.environ["TFSYNTH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tfsynth"


class FeatureExtractor:
    """Maps uint8 NHWC images to float32 (N, D) features with a Keras model.

    Args:
        model: a Keras model.
        layer: name of the layer whose output are the features; None uses
            the model output. Outputs with more than 2 dimensions are flattened.
        name: a short name for reports, e.g. "domain-classifier".
        input_range: (lo, hi) the model expects; uint8 [0, 255] is mapped
            linearly onto it. tfsynth models use (-1, 1).
        resize: (H, W) to resize to first (bilinear), or None.
        info: extra fields reported by `info()` (accuracy, cache path...).

    Example:

    >>> from tfsynth.evaluation.classifier import build_classifier
    >>> ext = FeatureExtractor(build_classifier((16, 16, 1), 3, width=4), "features", name="demo")
    >>> ext(np.zeros((5, 16, 16, 1), np.uint8)).shape
    (5, 128)
    """

    def __init__(
        self,
        model,
        layer: str | None = None,
        *,
        name: str,
        input_range: tuple[float, float] = (-1.0, 1.0),
        resize: tuple[int, int] | None = None,
        info: Mapping[str, Any] | None = None,
    ):
        import keras

        if layer is not None:
            try:
                out = model.get_layer(layer).output
            except ValueError:
                names = ", ".join(lay.name for lay in model.layers[-8:])
                raise ConfigError(
                    f"extractor {name}: the model has no layer {layer!r} (last layers: {names})"
                ) from None
            model = keras.Model(model.inputs, out, name=f"{model.name}_{layer}")
        self.model = model
        self.layer = layer
        self.name = name
        self.input_range = tuple(float(v) for v in input_range)
        self.resize = tuple(resize) if resize else None
        self._info = dict(info or {})
        shape = model.input_shape
        self.input_shape = tuple(shape[1:]) if isinstance(shape, tuple) else None

    @property
    def dim(self) -> int:
        return int(np.prod(self.model.output_shape[1:]))

    def info(self) -> dict[str, Any]:
        """Fields for summary.json: ``extractor``, ``extractor_dim`` and settings."""
        return {"extractor": self.name, "extractor_dim": self.dim, **self._info}

    def get_config(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "name": self.name,
            "input_range": list(self.input_range),
            "resize": list(self.resize) if self.resize else None,
        }

    def _check(self, images: np.ndarray) -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise DataError(
                f"extractor {self.name}: expected uint8 NHWC images, got {images.dtype} {images.shape}"
            )
        if self.input_shape is None:
            return
        h, w, c = self.input_shape
        hw = self.resize or images.shape[1:3]
        if (h is not None and h != hw[0]) or (w is not None and w != hw[1]):
            raise DataError(
                f"extractor {self.name}: images are {images.shape[1]}x{images.shape[2]} but the "
                f"model expects {h}x{w}"
            )
        if c not in (None, images.shape[-1]) and {c, images.shape[-1]} != {1, 3}:
            raise DataError(
                f"extractor {self.name}: images have {images.shape[-1]} channels, the model expects {c}"
            )

    def __call__(self, images, *, batch_size: int = 256) -> np.ndarray:
        """Features (N, D) float32 of uint8 NHWC images."""
        import tensorflow as tf

        images = np.asarray(images)
        self._check(images)
        lo, hi = self.input_range
        channels = self.input_shape[-1] if self.input_shape else None
        resize = self.resize

        def prep(x):
            x = tf.cast(x, tf.float32)
            if channels == 3 and x.shape[-1] == 1:
                x = tf.image.grayscale_to_rgb(x)
            elif channels == 1 and x.shape[-1] == 3:
                x = tf.image.rgb_to_grayscale(x)
            if resize:
                x = tf.image.resize(x, resize)
            return x * ((hi - lo) / 255.0) + lo

        ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size).map(prep)
        out = np.asarray(self.model.predict(ds.prefetch(2), verbose=0), np.float32)
        return out.reshape(len(out), -1)


def dataset_fingerprint(dataset: ImageDataset) -> str:
    """SHA-256 (hex) of a dataset's content: shape, classes, image bytes, labels."""
    images, labels = dataset.numpy()
    h = hashlib.sha256()
    h.update(json.dumps([list(dataset.shape), dataset.class_names]).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(labels, np.int64).tobytes())
    return h.hexdigest()


def domain_classifier(
    train: ImageDataset,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    batch_size: int = 64,
    width: int = 16,
    feature_dim: int = 128,
    min_steps: int = 300,
    cache_dir: str | os.PathLike | None | bool = None,
):
    """The domain classifier trained on `train`: (keras.Model, cache info).

    The trained model is cached under ``cache_dir/domain/<key>/`` where the
    key hashes the dataset content and the recipe (epochs, seed, sizes), so
    the generator's validation, curation and evaluation of the same real
    data share one training. `cache_dir` None uses `default_cache_dir()`;
    False disables the cache.
    """
    import keras

    from tfsynth.io import atomic_directory, atomic_write_json

    recipe = {
        "recipe_version": DOMAIN_RECIPE_VERSION,
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "width": width,
        "feature_dim": feature_dim,
        "min_steps": min_steps,
    }
    key = _cache_key(train, recipe)
    entry = _cache_entry(cache_dir, "domain", key)
    cached = entry is not None and (entry / "model.keras").is_file()
    if cached:
        model = keras.saving.load_model(entry / "model.keras", compile=False)
    else:
        model = train_classifier(
            train,
            epochs=epochs,
            seed=seed,
            batch_size=batch_size,
            width=width,
            feature_dim=feature_dim,
            min_steps=min_steps,
        )
        if entry is not None:
            try:
                with atomic_directory(entry, overwrite=True) as tmp:
                    model.save(tmp / "model.keras")
                    atomic_write_json(tmp / "recipe.json", {**recipe, "train": train.name})
            except OSError:
                # A read-only cache must not stop an evaluation; it only costs time.
                entry = None
    info = {
        "extractor_train_examples": len(train),
        "extractor_epochs": epochs,
        "extractor_cached": bool(cached),
        "extractor_cache_key": key,
    }
    return model, info


def _cache_key(train: ImageDataset, recipe: Mapping[str, Any]) -> str:
    """16 hex digits of the training data's content and the recipe."""
    text = dataset_fingerprint(train) + json.dumps(dict(recipe), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_entry(cache_dir, kind: str, key: str) -> Path | None:
    """cache_dir/KIND/KEY (None when the cache is off: `cache_dir` False)."""
    if cache_dir is False:
        return None
    return Path(cache_dir or default_cache_dir()) / kind / key


def domain_extractor(
    train: ImageDataset, *, test: ImageDataset | None = None, **recipe: Any
) -> FeatureExtractor:
    """The domain classifier trained on `train` (see `domain_classifier`), as an extractor.

    `recipe` takes `domain_classifier`'s keywords (epochs, seed, sizes, cache_dir).
    `info()` reports ``extractor_test_accuracy`` (on `test`, when given),
    ``extractor_train_examples`` and ``extractor_cached``.
    """
    model, info = domain_classifier(train, **recipe)
    info = dict(info)
    if test is not None:
        info["extractor_test_accuracy"] = accuracy(model, test)
        info["extractor_test_examples"] = len(test)
    ext = FeatureExtractor(model, FEATURE_LAYER, name="domain-classifier", info=info)
    ext.classifier = model
    return ext


def inception_weights_path() -> Path:
    """Where Keras keeps the InceptionV3 no-top weights (``$KERAS_HOME/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / INCEPTION_WEIGHTS


def inception_extractor(weights: str | os.PathLike | None = None) -> FeatureExtractor:
    """InceptionV3 average-pooled features (2048-d), from weights on disk only.

    Raises:
        ConfigError: when the weights file is missing; tfsynth never downloads.
    """
    import keras

    path = Path(weights) if weights else inception_weights_path()
    if not path.is_file():
        raise ConfigError(
            f"{path}: InceptionV3 ImageNet weights not found; tfsynth does not download them. "
            "Place the file there (or pass inception:PATH.h5) or use --extractor domain"
        )
    model = keras.applications.InceptionV3(
        include_top=False, weights=str(path), pooling="avg", input_shape=(299, 299, 3)
    )
    return FeatureExtractor(
        model,
        name="inception-v3",
        resize=(299, 299),
        info={"extractor_weights": str(path)},
    )


def keras_layer_extractor(
    path: str | os.PathLike, layer: str, *, input_range: tuple[float, float] = (-1.0, 1.0)
) -> FeatureExtractor:
    """Features from `layer` of a Keras model file (``.keras`` or ``.h5``)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: extractor model file not found")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad file
        raise ConfigError(f"{path}: not a loadable Keras model ({type(e).__name__})") from None
    return FeatureExtractor(
        model,
        layer,
        name=f"keras:{path.name}:{layer}",
        input_range=input_range,
        info={"extractor_model": str(path)},
    )


def build_extractor(
    spec: str = "domain",
    *,
    train: ImageDataset | None = None,
    test: ImageDataset | None = None,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    min_steps: int = 300,
    cache_dir: str | os.PathLike | None | bool = None,
) -> FeatureExtractor:
    """Builds the extractor named by `spec` (see the module docstring).

    `train` (and optionally `test`) are needed for ``"domain"`` and ``"auto"``.
    """
    spec = (spec or "").strip()
    if spec == "auto" and train is not None and not train.labeled:
        return trained_ssl_extractor(train, epochs=epochs, seed=seed, cache_dir=cache_dir)
    if spec in ("auto", "domain"):
        if train is None:
            raise ConfigError("extractor domain: needs the real training data")
        return domain_extractor(
            train, test=test, epochs=epochs, seed=seed, min_steps=min_steps, cache_dir=cache_dir
        )
    if spec == "inception" or spec.startswith("inception:"):
        return inception_extractor(spec.partition(":")[2] or None)
    if spec.startswith("keras:"):
        path, sep, layer = spec[len("keras:") :].rpartition(":")
        if not sep or not path or not layer:
            raise ConfigError(f"extractor {spec!r}: expected keras:MODEL.keras:LAYER")
        return keras_layer_extractor(path, layer)
    if spec.startswith("ssl:") and spec[4:]:
        return ssl_extractor(spec[4:])
    raise ConfigError(f"extractor {spec!r}: {EXTRACTOR_HELP}")


def ssl_extractor(path: str | os.PathLike) -> FeatureExtractor:
    """Features of a `tfsynth ssl` run's encoder (DIR or its model.keras), learnt without labels."""
    from tfsynth.selfsup.networks import FEATURE_LAYER as SSL_FEATURES
    from tfsynth.selfsup.train import load_ssl

    encoder = load_ssl(path).encoder
    return FeatureExtractor(
        encoder, SSL_FEATURES, name=f"ssl:{Path(path).name}", info={"extractor_model": str(path)}
    )


def trained_ssl_extractor(
    train: ImageDataset,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None | bool = None,
) -> FeatureExtractor:
    """A `tfsynth ssl` encoder trained on `train`'s images (labels unused), as an extractor.

    The label-free counterpart of `domain_extractor`: `SSLConfig`'s recipe
    with `epochs` epochs, cached under ``cache_dir/ssl/<key>/`` (the key
    hashes the images and the recipe). `info()` has ``extractor_note``, the
    line `tfsynth evaluate` prints about it.
    """
    from tfsynth.selfsup.networks import FEATURE_LAYER as SSL_FEATURES
    from tfsynth.selfsup.train import SSLConfig, load_ssl

    cfg = SSLConfig(data=train.name, epochs=epochs, seed=seed)
    cfg.batch_size = min(cfg.batch_size, len(train))
    recipe = {"recipe_version": SSL_RECIPE_VERSION, **cfg.to_dict()}
    del recipe["data"]  # a name; the key hashes the images themselves
    key = _cache_key(train, recipe)
    entry = _cache_entry(cache_dir, "ssl", key)
    cached = entry is not None and (entry / "model.keras").is_file()
    if cached:
        encoder = load_ssl(entry).encoder
    else:
        encoder = _train_ssl_encoder(cfg, train, entry, recipe)
    info = {
        "extractor_train_examples": len(train),
        "extractor_epochs": epochs,
        "extractor_cached": bool(cached),
        "extractor_cache_key": key,
        "extractor_note": (
            f"{train.name} is unlabelled: the metrics use a self-supervised encoder trained on "
            f"its images ({epochs} epoch{'s' * (epochs != 1)}, labels unused), not the domain "
            "classifier"
        ),
    }
    return FeatureExtractor(encoder, SSL_FEATURES, name="ssl-encoder", info=info)


def _train_ssl_encoder(cfg, train: ImageDataset, entry: Path | None, recipe) -> Any:
    """Trains the SSL encoder; keeps it in the cache `entry` when there is a writable one."""
    import shutil
    import tempfile

    from tfsynth.io import atomic_directory, atomic_write_json
    from tfsynth.selfsup.train import load_ssl, train_ssl

    with tempfile.TemporaryDirectory(prefix="tfsynth-ssl-") as work:
        run = Path(work) / "ssl"
        train_ssl(cfg, run, data=train)
        if entry is not None:
            try:
                with atomic_directory(entry, overwrite=True) as tmp:
                    shutil.copy2(run / "model.keras", tmp / "model.keras")
                    atomic_write_json(tmp / "recipe.json", {**recipe, "train": train.name})
            except OSError:
                pass  # a read-only cache must not stop an evaluation; it only costs time
        return load_ssl(run).encoder
