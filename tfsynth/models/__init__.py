"""Generative models: GAN family (dcgan, wgan-gp, hinge, cgan), VAE family and ddpm.

Every trainer has `image_shape` (H, W, C), `num_classes` (0 when
unconditional), `latent_dim`, `class_names` and `generate(noise, labels=None)`
returning float32 images in [-1, 1].

Example:

>>> m = build_model("cgan", (16, 16, 1), num_classes=3, latent_dim=8, width=4)
>>> m.num_classes, m.latent_dim, m.image_shape
(3, 8, (16, 16, 1))
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from tfsynth.errors import ConfigError, DataError
from tfsynth.models.diffusion import Diffusion, build_diffusion
from tfsynth.models.gan import GAN, build_gan
from tfsynth.models.vae import VAE, build_vae

MODEL_NAMES = ("dcgan", "wgan-gp", "hinge", "cgan", "vae", "cvae", "ddpm")
MODEL_FILE = "model.keras"


def build_model(
    name: str,
    image_shape: Sequence[int],
    num_classes: int = 0,
    *,
    latent_dim: int | None = None,
    width: int | None = None,
    **kwargs,
):
    """Builds the trainer called `name` (one of MODEL_NAMES), uncompiled.

    "cgan" and "cvae" are class-conditional and need `num_classes >= 2`; the
    others ignore the labels, except "ddpm", which is class-conditional (with
    classifier-free guidance) when `num_classes >= 2` and unconditional
    otherwise; its `latent_dim` is H * W * C (one noise value per pixel;
    a `latent_dim` given here is ignored). "cgan" takes a `loss`
    keyword (default dcgan). Other keywords go to `GAN` / `VAE` /
    `Diffusion` (ema_decay, diffaugment, beta, prediction, ...).
    """
    if name not in MODEL_NAMES:
        raise ConfigError(f"model: expected one of {', '.join(MODEL_NAMES)}, got {name!r}")
    if name == "ddpm":
        return _build_ddpm(image_shape, num_classes, width, **kwargs)
    conditional = name in ("cgan", "cvae")
    if conditional and num_classes < 2:
        raise ConfigError(
            f"model {name!r} is class-conditional and needs >= 2 classes, got {num_classes}"
        )
    k = num_classes if conditional else 0
    if name in ("vae", "cvae"):
        return build_vae(image_shape, k, latent_dim=latent_dim or 16, width=width or 32, **kwargs)
    if name != "cgan":
        if kwargs.get("loss", name) != name:
            raise ConfigError(
                f"loss: model {name!r} fixes the loss; use --model cgan or {kwargs['loss']}"
            )
        kwargs["loss"] = name
    return build_gan(image_shape, k, latent_dim=latent_dim or 64, width=width or 32, **kwargs)


def is_conditional(name: str, num_classes: int) -> bool:
    """Whether model `name` trained on `num_classes` classes is class-conditional.

    >>> is_conditional("ddpm", 10), is_conditional("ddpm", 1), is_conditional("vae", 10)
    (True, False, False)
    """
    return name in ("cgan", "cvae") or (name == "ddpm" and num_classes >= 2)


def check_image_shape(name: str, image_shape: Sequence[int]) -> None:
    """Raises ConfigError (one line) when model `name` cannot be built for `image_shape`.

    Cheap (no layers built), so callers check before writing anything: a
    ddpm's U-Net must halve both sides at least twice.

    >>> check_image_shape("ddpm", (28, 28, 1))
    >>> check_image_shape("ddpm", (30, 30, 1))
    Traceback (most recent call last):
    ...
    tfsynth.errors.ConfigError: image_shape: sides 30x30 cannot be halved 2 times for the U-Net (both must be multiples of 4 and >= 16); got (30, 30, 1)
    """
    if name == "ddpm":
        from tfsynth.models.unet import unet_levels

        unet_levels(image_shape)


def set_sampling(model, steps: int | None = None, guidance: float | None = None, where=""):
    """Applies DDIM `steps` / `guidance` to a loaded ddpm (None: keep its own).

    Any other model with either given is a ConfigError naming `where`.
    """
    if steps is None and guidance is None:
        return model
    if not isinstance(model, Diffusion):
        raise ConfigError(
            f"{where or 'model'}: --steps and --guidance set a ddpm's DDIM sampler; "
            f"this is a {type(model).__name__}"
        )
    return model.set_sampling(steps, guidance)


def _build_ddpm(image_shape, num_classes, width, **kwargs):
    k = num_classes if num_classes >= 2 else 0
    return build_diffusion(image_shape, k, width=width or 32, **kwargs)


def load_generator(model):
    """A tfsynth trainer: `model` itself, or loaded from DIR/model.keras or a .keras file.

    `train`'s result is a path-like of its run directory, so it loads too.
    """
    import keras

    if isinstance(model, GAN | VAE | Diffusion):
        return model
    if isinstance(model, keras.Model):
        raise DataError(
            f"{model.name}: a {type(model).__name__}, not a tfsynth GAN, VAE or Diffusion model"
        )
    path = Path(model)
    file = path / MODEL_FILE if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"{file}: model file not found (expected a tfsynth model.keras)")
    try:
        loaded = keras.saving.load_model(file)
    except Exception as e:  # a corrupt zip, a foreign model: one line for the user
        raise DataError(f"{file}: not a loadable tfsynth model ({type(e).__name__}: {e})") from None
    if not isinstance(loaded, GAN | VAE | Diffusion):
        raise DataError(
            f"{file}: holds a {type(loaded).__name__}, not a tfsynth GAN, VAE or Diffusion model"
        )
    return loaded


def describe(model) -> str:
    """How messages name a model given as a path or as an object."""
    import keras

    return f"model {model.name!r}" if isinstance(model, keras.Model) else os.fspath(model)


def model_id(model) -> str:
    """A short, stable hash of the weights that `generate` uses (for provenance)."""
    digest = hashlib.sha256()
    for w in model.sampler.weights:
        value = w.numpy()
        digest.update(str((w.path, value.shape, value.dtype.str)).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:12]


__all__ = [
    "Diffusion",
    "GAN",
    "MODEL_FILE",
    "MODEL_NAMES",
    "VAE",
    "build_diffusion",
    "build_gan",
    "build_model",
    "build_vae",
    "check_image_shape",
    "is_conditional",
    "load_generator",
    "model_id",
    "set_sampling",
]
