"""Dataclass configs for `tfsynth run`, with JSON round-trip and presets.

A `RunConfig` is everything a pipeline run needs; `run/config.json` stores it
so that a rerun (or a resume after an interruption) uses the same settings.

Example:

>>> cfg = preset("smoke", data="mnist-10k[:600]")
>>> cfg.train.epochs >= 1
True
>>> RunConfig.from_json(cfg.to_json()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any

from tfsynth.errors import ConfigError

MODELS = ("dcgan", "wgan-gp", "hinge", "cgan", "vae", "cvae")


@dataclass
class DataConfig:
    """Which real data, and how it is split (seeded, disjoint)."""

    spec: str = "mnist-10k"
    val_fraction: float = 0.1
    test_fraction: float = 0.2


@dataclass
class TrainConfig:
    """The generator and how long to train it."""

    model: str = "cgan"
    epochs: int = 15
    batch_size: int = 64
    width: int = 32
    latent_dim: int = 64
    max_train_examples: int | None = None


@dataclass
class AugmentConfig:
    """D_aug: an augmentation policy and how many samples to materialize."""

    policy: str = "digits"
    num_examples: int = 2000


@dataclass
class GenerateConfig:
    """D_gen: how many samples, with which label distribution."""

    num_examples: int = 2000
    labels: str = "uniform"


@dataclass
class FuseConfig:
    """D': proportions of each source and the target class distribution."""

    ratios: str = "real=0.5,aug=0.25,gen=0.25"
    size: int | None = None
    class_target: str = "match"
    num_shards: int = 2


@dataclass
class EvaluateConfig:
    """Validation: sample counts, classifier recipe length, low-data curve."""

    max_samples: int = 2000
    classifier_epochs: int = 3
    extractor_epochs: int = 3
    seeds: int = 3
    low_data_sizes: tuple[int, ...] = (100, 500, 1000)
    min_steps: int = 200


@dataclass
class RunConfig:
    """The whole pipeline: data -> D_aug + D_gen -> D' -> validation -> export."""

    preset: str = "quick"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    fuse: FuseConfig = field(default_factory=FuseConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def validate(self) -> RunConfig:
        """Raises ConfigError naming the first invalid field."""
        if self.train.model not in MODELS:
            raise ConfigError(
                f"train.model: {self.train.model!r} is not one of {', '.join(MODELS)}"
            )
        for name, value in [
            ("train.epochs", self.train.epochs),
            ("train.batch_size", self.train.batch_size),
            ("augment.num_examples", self.augment.num_examples),
            ("generate.num_examples", self.generate.num_examples),
            ("evaluate.seeds", self.evaluate.seeds),
        ]:
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        d = self.data
        if not (
            0 < d.val_fraction < 1
            and 0 < d.test_fraction < 1
            and d.val_fraction + d.test_fraction < 1
        ):
            raise ConfigError(
                "data.val_fraction and data.test_fraction must be in (0, 1) and sum to < 1"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return _from_dict(cls, d, "")

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"config: not valid JSON ({e})") from None


def _from_dict(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{where or 'config'}: expected an object, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown field(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in d.items():
        f = known[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, f"{where}{name}.")
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _smoke() -> RunConfig:
    return RunConfig(
        preset="smoke",
        data=DataConfig(spec="mnist-10k[:600]"),
        train=TrainConfig(model="cgan", epochs=1, batch_size=32, width=8, latent_dim=16),
        augment=AugmentConfig(num_examples=200),
        generate=GenerateConfig(num_examples=200),
        fuse=FuseConfig(num_shards=2),
        evaluate=EvaluateConfig(
            max_samples=200,
            classifier_epochs=1,
            extractor_epochs=1,
            seeds=1,
            low_data_sizes=(50,),
            min_steps=20,
        ),
    )


def _quick() -> RunConfig:
    return RunConfig(preset="quick")


def _full() -> RunConfig:
    return RunConfig(
        preset="full",
        train=TrainConfig(model="cgan", epochs=40, width=48, latent_dim=64),
        augment=AugmentConfig(num_examples=10000),
        generate=GenerateConfig(num_examples=10000),
        evaluate=EvaluateConfig(max_samples=2000, classifier_epochs=8, extractor_epochs=8, seeds=3),
    )


PRESETS = {"smoke": _smoke, "quick": _quick, "full": _full}


def preset(
    name: str = "quick",
    *,
    data: str | None = None,
    model: str | None = None,
    seed: int | None = None,
) -> RunConfig:
    """A preset config with optional overrides of the data spec, model and seed."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: {name!r} is not one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    if data is not None:
        cfg.data.spec = data
    if model is not None:
        cfg.train.model = model
    if seed is not None:
        cfg.seed = seed
    return cfg.validate()
