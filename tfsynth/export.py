"""Export a trained generator as a SavedModel for TF Serving.

`export_generator` writes ``OUT/VERSION/`` (the TF Serving layout: the
server watches OUT and serves the highest numeric version) with two
signatures, traced into the graph so that loading needs only TensorFlow
(no tfsynth, no Keras custom objects):

- ``serving_default``: ``noise`` float32 [N, latent_dim] (and, for a
  class-conditional model, ``labels`` int64 [N]) -> ``images`` uint8
  [N, H, W, C].
- ``sample``: ``n`` int32 scalar and ``seed`` int64 scalar (and, for a
  conditional model, ``labels`` int64 [N]: either N = n labels, or an empty
  list for labels cycling over the classes, i % num_classes) -> ``images``
  uint8 [n, H, W, C] and ``labels`` int64 [n]. Noise row i is
  `tf.random.stateless_normal` with seed (seed, i) (`models.sampling.noise_rows`,
  traced in), so ``sample`` gives the images of examples 0 .. n-1 of
  ``tfsynth generate --seed SEED`` (same labels by default: i % num_classes).

For a ``ddpm`` model both signatures run the whole DDIM loop in the graph
(a `tf.while_loop` over the model's `sample_steps`, with its `guidance`;
both are recorded in summary.json); its `latent_dim` is H * W * C.

Example (shell):

    tfsynth export --model runs/cgan/model.keras --out saved_models/mnist_cgan
    saved_model_cli show --dir saved_models/mnist_cgan/1 --all

and in Python, with TensorFlow only:

    m = tf.saved_model.load("saved_models/mnist_cgan/1")
    out = m.signatures["sample"](n=tf.constant(8), seed=tf.constant(0, tf.int64),
                                 labels=tf.constant([], tf.int64))
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tfsynth.errors import ConfigError, DataError

_VERSION = re.compile(r"^\d+$")


def next_version(root: str | os.PathLike) -> int:
    """1 + the highest numeric sub-directory of `root` (1 when there is none)."""
    root = Path(root)
    if not root.is_dir():
        return 1
    versions = [int(p.name) for p in root.iterdir() if p.is_dir() and _VERSION.match(p.name)]
    return max(versions, default=0) + 1


def serving_module(model):
    """A `tf.Module` with the `serving_default` and `sample` functions of `model`.

    `model` is any object with the trainer contract: `generate(noise,
    labels=None)` -> float32 in [-1, 1], `latent_dim`, `num_classes`,
    `image_shape`.
    """
    import tensorflow as tf

    from tfsynth.data.pipeline import to_uint8
    from tfsynth.models.sampling import noise_rows

    latent_dim = int(model.latent_dim)
    k = int(model.num_classes)

    class GeneratorModule(tf.Module):
        def __init__(self):
            super().__init__(name="tfsynth_generator")
            # Track only the weights `generate` uses (not the discriminator,
            # encoder or optimizer state) so the export stays small.
            self.sampler = getattr(model, "sampler", model)

        def _images(self, noise, labels):
            return to_uint8(model.generate(noise, labels if k else None))

        def _cycle(self, n, labels):
            return tf.cond(
                tf.size(labels) > 0,
                lambda: labels,
                lambda: tf.range(tf.cast(n, tf.int64), dtype=tf.int64) % max(k, 1),
            )

    module = GeneratorModule()
    noise_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="noise")
    n_spec = tf.TensorSpec([], tf.int32, name="n")
    seed_spec = tf.TensorSpec([], tf.int64, name="seed")
    labels_spec = tf.TensorSpec([None], tf.int64, name="labels")

    def noise(n, seed):  # rows 0 .. n-1, as generate_batches draws them
        return noise_rows(seed, tf.range(tf.cast(n, tf.int64)), latent_dim)

    if k:

        @tf.function(input_signature=[noise_spec, labels_spec])
        def serve(noise, labels):
            tf.debugging.assert_equal(tf.shape(noise)[0], tf.shape(labels)[0])
            return {"images": module._images(noise, labels)}

        @tf.function(input_signature=[n_spec, seed_spec, labels_spec])
        def sample(n, seed, labels):
            labels = module._cycle(n, labels)
            tf.debugging.assert_equal(tf.size(labels), n, message="labels must have n entries")
            return {"images": module._images(noise(n, seed), labels), "labels": labels}

    else:

        @tf.function(input_signature=[noise_spec])
        def serve(noise):
            return {"images": module._images(noise, None)}

        @tf.function(input_signature=[n_spec, seed_spec])
        def sample(n, seed):
            # Unconditional models have no classes; label 0 keeps the output shape.
            images = module._images(noise(n, seed), None)
            return {"images": images, "labels": tf.zeros([n], tf.int64)}

    module.serve = serve
    module.sample = sample
    return module


def export_generator(
    model,
    out_root: str | os.PathLike,
    name: str | None = None,
    version: int | None = None,
) -> Path:
    """Writes the generator of `model` as OUT_ROOT[/NAME]/VERSION/.

    Args:
        model: DIR/model.keras of a tfsynth trainer (or its directory), the
            trainer itself, or `train`'s result.
        out_root: e.g. ``saved_models/NAME``; with `name`, the model goes to
            ``out_root/name``.
        name: optional sub-directory of `out_root`.
        version: the version number; default one more than the highest one
            there (1 for a new model). An existing version is never replaced.

    Returns:
        The version directory (holds saved_model.pb, variables/ and
        summary.json).
    """
    import tensorflow as tf

    from tfsynth.io import atomic_directory
    from tfsynth.models import describe, load_generator, model_id
    from tfsynth.privacy.wiring import model_summary
    from tfsynth.summary import write_summary

    root = Path(out_root) / name if name else Path(out_root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a directory; --out must be a directory")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ConfigError(f"--version: expected an integer >= 1, got {version!r}")
    source, model = describe(model), load_generator(model)
    version = next_version(root) if version is None else version
    final = root / str(version)
    if final.exists():
        raise DataError(f"{final}: version {version} already exists; versions are never replaced")
    module = serving_module(model)
    with atomic_directory(final) as tmp:
        tf.saved_model.save(
            module,
            str(tmp),
            signatures={
                "serving_default": module.serve.get_concrete_function(),
                "sample": module.sample.get_concrete_function(),
            },
        )
        write_summary(
            tmp,
            "export",
            {
                "model": source,
                "model_id": model_id(model),
                "out": str(final),
                "version": version,
                "latent_dim": int(model.latent_dim),
                "num_classes": int(model.num_classes),
                "image_shape": list(model.image_shape),
                "signatures": ["serving_default", "sample"],
                **_sampling_options(model),
                **model_summary(model),
            },
        )
    return final


def _sampling_options(model) -> dict:
    """The DDIM settings traced into a diffusion model's signatures (empty for others)."""
    if not hasattr(model, "sample_steps"):
        return {}
    return {"sample_steps": int(model.sample_steps), "guidance": float(model.guidance)}
