"""Dataclass configs for `tfsynth run`, with JSON round-trip and presets.

A `RunConfig` is everything a pipeline run needs; `run/config.json` stores it
so that a rerun (or a resume after an interruption) uses the same settings.

Example:

>>> cfg = preset("smoke", data="mnist-10k[:600]")
>>> cfg.train.steps >= 1
True
>>> RunConfig.from_json(cfg.to_json()) == cfg
True
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tfsynth.errors import ConfigError
from tfsynth.evaluation.classifier import DEFAULT_EPOCHS as CLASSIFIER_EPOCHS
from tfsynth.evaluation.neighbors import DEFAULT_BLOCK_SIZE
from tfsynth.evaluation.utility import DEFAULT_LOW_DATA_SIZES
from tfsynth.selfsup.pseudo import PseudoLabelConfig
from tfsynth.selfsup.train import SSLConfig

MODELS = ("dcgan", "wgan-gp", "hinge", "cgan", "vae", "cvae", "ddpm")


@dataclass
class DataConfig:
    """Which real data, and how it is split (seeded, disjoint).

    With `test_spec`, the held-out test set is that dataset and `spec` is
    split into train and validation only (`test_fraction` is unused).
    `val_fraction="auto"` is 0.2 below `SMALL_DATA` images and 0.1 above:
    the validation split chooses the mix, and 10% of 500 images (50, one
    image = 2 points) cannot tell a 1-point gain from noise.

    Example:

    >>> DataConfig().val_fraction_for(500), DataConfig().val_fraction_for(10_000)
    (0.2, 0.1)
    """

    SMALL_DATA = 5000

    spec: str = "mnist-10k"
    val_fraction: float | str = "auto"
    test_fraction: float = 0.2
    test_spec: str | None = None

    def val_fraction_for(self, num_images: int) -> float:
        """The validation fraction for a dataset of `num_images` ("auto" resolved)."""
        if self.val_fraction == "auto":
            return 0.2 if num_images < self.SMALL_DATA else 0.1
        return self.val_fraction


@dataclass
class FitConfig:
    """How one model is trained: the options of `tfsynth train` and `training.train`.

    The CLI builds one from its flags and `tfsynth run` one per model from
    its `TrainConfig` (`TrainConfig.fit_config`); `train(data, config)`
    reads every option from it. None means "the model's own default"
    (width, latent size, learning rate, loss, n_critic, EMA decay and beta
    are defined once, in the trainers). Training lasts `epochs` passes
    (`DEFAULT_EPOCHS` when neither is given) or `steps` optimizer steps.

    Example:

    >>> cfg = FitConfig("cgan", steps=200, width=8)
    >>> cfg.replace(seed=3).seed, cfg.model, cfg.replace() == cfg
    (3, 'cgan', True)
    """

    DEFAULT_EPOCHS = 20

    model: str = "dcgan"
    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 64
    seed: int = 0
    width: int | None = None
    latent_dim: int | None = None
    learning_rate: float | None = None
    loss: str | None = None
    n_critic: int | None = None
    ema_decay: float | None = None
    diffaugment: str | None = None
    beta: float | None = None
    sample_steps: int | None = None  # a ddpm's DDIM defaults, saved with the model
    guidance: float | None = None
    strategy: Any = None  # None, "mirrored", "multiworker", "tpu" or a tf.distribute.Strategy
    precision: str = "float32"
    jit_compile: bool | str = "auto"
    checkpoint_every: int | None = None
    steps_per_epoch: int | None = None
    eval_every: int | None = None  # epochs between validations (with `val`)
    select: str = "fid"
    overwrite: bool = False
    dp: Any = None  # a tfsynth.privacy.DPConfig: DP-SGD training (see tfsynth.privacy)

    def replace(self, **changes) -> FitConfig:
        """A copy with `changes`; an unknown option raises ConfigError naming it."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            hint = " (the run directory is `out`)" if "out_dir" in unknown else ""
            raise ConfigError(f"train: unknown option(s) {', '.join(unknown)}{hint}")
        return dataclasses.replace(self, **changes)


@dataclass
class TrainConfig:
    """The generator(s) and how long to train them.

    `model` may list several families ("cgan,cvae"): each is trained and the
    search of the mix picks among them. Training is sized in optimizer
    `steps`, so 300 images get as many updates as 7,000; `diffaugment`
    "auto" turns DiffAugment on below `DIFFAUGMENT_BELOW` training images.
    `per_model` overrides these settings for one family (`MODEL_SETTINGS`
    fills it per preset; keys in `MODEL_SETTING_KEYS`): a ddpm needs
    another step budget, batch and learning rate than a cgan.

    >>> TrainConfig(per_model={"ddpm": {"steps": 900}}).for_model("ddpm")["steps"]
    900
    """

    model: str = "cgan"
    steps: int = 2500
    batch_size: int = FitConfig.batch_size
    width: int = 32
    latent_dim: int = 64
    diffaugment: str | None = "auto"
    select: str = "fid"
    eval_every: int | None = None
    max_train_examples: int | None = None
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    dp: Any = None  # a tfsynth.privacy.DPConfig: every generator trains with DP-SGD

    def __post_init__(self):
        # config.json stores the DPConfig as a dict; a resumed run must compare equal.
        if isinstance(self.dp, dict):
            from tfsynth.privacy import DPConfig

            self.dp = DPConfig.from_dict(self.dp)

    def check_dp(self) -> None:
        """Raises ConfigError when `dp` is invalid or a listed model has no DP-SGD step."""
        if self.dp is None:
            return
        from tfsynth.privacy.plan import check_model

        self.dp.validate()
        for name in self.models:
            check_model(name, loss=None, n_critic=None, precision="float32")

    @property
    def models(self) -> list[str]:
        return [m.strip() for m in self.model.split(",") if m.strip()]

    def for_model(self, name: str) -> dict[str, Any]:
        """The settings `name` trains with: these fields, then `per_model[name]`."""
        base = {k: getattr(self, k, None) for k in MODEL_SETTING_KEYS}
        return {**base, **self.per_model.get(name, {})}

    def fit_config(self, name: str, **options) -> FitConfig:
        """The `FitConfig` that trains `name` with these settings, plus `options`."""
        settings = self.for_model(name)
        if name != "ddpm":
            del settings["sample_steps"], settings["guidance"]  # a DDIM sampler's
        return FitConfig(model=name, **settings).replace(**options)

    def validate_per_model(self) -> None:
        """Raises ConfigError naming the first bad `per_model` entry."""
        for name, settings in self.per_model.items():
            where = f"train.per_model.{name}"
            if name not in MODELS or not isinstance(settings, dict):
                raise ConfigError(f"{where}: expected settings of one of {', '.join(MODELS)}")
            unknown = sorted(set(settings) - set(MODEL_SETTING_KEYS))
            if unknown:
                raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
            for key, value in settings.items():
                _check_setting(f"{where}.{key}", key, value)
            if name != "ddpm" and {"sample_steps", "guidance"} & set(settings):
                raise ConfigError(f"{where}: sample_steps and guidance are ddpm settings")


# What `TrainConfig.per_model` may override (learning_rate None: the model's default).
MODEL_SETTING_KEYS = ("steps", "batch_size", "width", "latent_dim", "learning_rate",
                      "sample_steps", "guidance")  # fmt: skip


def _check_setting(where: str, key: str, value) -> None:
    if value is None and key in ("learning_rate", "sample_steps", "guidance"):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        ok = False
    elif key == "learning_rate":
        ok = math.isfinite(value) and value > 0
    elif key == "guidance":
        ok = math.isfinite(value) and value >= 0
    else:
        ok = isinstance(value, int) and value >= 1
    if not ok:
        want = {"learning_rate": "a finite number > 0", "guidance": "a finite number >= 0"}
        raise ConfigError(f"{where}: expected {want.get(key, 'a positive integer')}, got {value!r}")


class _Options:
    """`replace` for the config of one command (`COMMAND` names it in errors)."""

    COMMAND = ""

    def replace(self, **changes):
        """A copy with `changes`; an unknown option raises ConfigError naming it."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"{self.COMMAND}: unknown option(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")


@dataclass
class AugmentConfig(_Options):
    """D_aug: the options of `tfsynth augment` and `augment.augment_to_dir`.

    `policy` is a preset, a spec such as "rotate:10,zoom:0.1", a mapping or
    an `AugmentationPolicy`; `preview` a .png path for a grid of originals
    above their augmentations. `tfsynth run` keeps one in
    `RunConfig.augment` (its seed and preview are the run's).

    Example:

    >>> cfg = AugmentConfig(num_examples=500).validate()
    >>> cfg.replace(policy="rotate:10").policy, cfg.seed, cfg.replace() == cfg
    ('rotate:10', 0, True)
    >>> AugmentConfig(batch_size=0).validate()
    Traceback (most recent call last):
    ...
    tfsynth.errors.ConfigError: batch_size: expected an integer >= 1, got 0
    """

    COMMAND = "augment"

    policy: Any = "digits"
    num_examples: int = 2000
    seed: int = 0
    batch_size: int = 256
    examples_per_shard: int = 10_000
    preview: Any = None
    overwrite: bool = False

    def validate(self) -> AugmentConfig:
        """Raises ConfigError naming the first bad field (the policy: by `build_policy`)."""
        for name, minimum in (("num_examples", 1), ("seed", 0), ("batch_size", 1),
                              ("examples_per_shard", 1)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
            if value < minimum:
                raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
        if self.preview is not None and Path(self.preview).suffix.lower() != ".png":
            raise ConfigError(f"preview: {self.preview} must be a .png file")
        return self


@dataclass
class GenerateConfig(_Options):
    """How samples are drawn: the options of `tfsynth generate` and `generation.generate`.

    The CLI builds one from its flags and `tfsynth run` keeps one in
    `RunConfig.generate` (`num_examples` None: as many as the training
    split; its seed is the run's). `labels`: "uniform", "match", "0,3,..."
    or an int array; `curate` keeps only samples the real-data
    `classifier` confirms with probability >= `min_confidence`; `steps`
    and `guidance` (None: the model's own) drive a ddpm's DDIM sampler.

    Example:

    >>> cfg = GenerateConfig(num_examples=100, curate=True).validate()
    >>> cfg.replace(seed=3).seed, cfg.labels, cfg.replace() == cfg
    (3, 'uniform', True)
    >>> GenerateConfig(num_examples=0).validate()
    Traceback (most recent call last):
    ...
    tfsynth.errors.ConfigError: num_examples: expected a positive integer, got 0
    """

    COMMAND = "generate"

    num_examples: int | None = None
    labels: Any = "uniform"
    seed: int = 0
    batch_size: int = 256
    examples_per_shard: int = 10_000
    curate: bool = False
    min_confidence: float = 0.9
    classifier: Any = None  # a .keras path or a keras.Model (default: the model's run dir's)
    steps: int | None = None
    guidance: float | None = None
    overwrite: bool = False

    def validate(self) -> GenerateConfig:
        """Raises ConfigError naming the first bad field (None `num_examples` passes)."""
        if self.num_examples is not None:
            _check_positive("num_examples", self.num_examples)
        _check_positive("batch_size", self.batch_size)
        _check_positive("examples_per_shard", self.examples_per_shard)
        if self.steps is not None or self.guidance is not None:  # a config alone needs no TF
            from tfsynth.models.diffusion import check_sampling

            check_sampling(self.steps, self.guidance)
        if self.curate:  # the threshold means nothing without curation
            from tfsynth.curation import check_min_confidence

            check_min_confidence(self.min_confidence)
        return self


def _run_generate(**changes) -> GenerateConfig:
    # A run curates its samples and matches the training split's class
    # proportions: D' should look like D, class by class.
    return GenerateConfig(**{"labels": "match", "curate": True, **changes})


@dataclass
class FuseConfig:
    """D': the mix, chosen on the validation split by a search (or fixed `ratios`).

    With `search`, candidates are real only plus real + m x synthetic for m
    in `multipliers` ("auto": 1 and enough to bring D' to about
    `AUTO_TARGET` examples, see `auto_multipliers`), the generator's share of the synthetic part in
    `gen_shares` and the curation threshold in `min_confidences`, each
    scored by the classifier's validation accuracy over `search_seeds`.
    """

    search: bool = True
    multipliers: tuple[float, ...] | str = "auto"
    # Generated-only mixes (share 1.0) are left to `full`: in the low-data
    # runs they never beat real + aug + gen, and each candidate costs two
    # classifier trainings of the quick preset's 8-minute budget.
    gen_shares: tuple[float, ...] = (0.0, 0.5)
    min_confidences: tuple[float, ...] = (0.9,)
    search_seeds: int = 2
    ratios: str = "real=0.5,aug=0.25,gen=0.25"
    size: int | None = None
    class_target: str = "match"
    num_shards: int = 2


@dataclass
class EvaluateConfig(_Options):
    """How synthetic data is validated: the options of `tfsynth evaluate` and `evaluate`.

    `extractor`: "auto" (domain, or an SSL encoder for unlabelled real
    data) | "domain" | "inception[:WEIGHTS.h5]" | "keras:MODEL:LAYER" |
    "ssl:DIR", trained `extractor_epochs` on the real data; `max_samples`
    caps each side for the distribution and privacy metrics (None: all);
    `classifier_epochs`, `seeds`, `low_data_sizes` (() or None: no curve)
    and `min_steps` (least steps of any classifier) are the utility recipe;
    `reference` ("test" or "real") is what FID etc. compare with;
    `test_fraction` is split off the real data when no test set is given;
    `utility` and `privacy` turn those parts off; `kid_subsets` and
    `kid_subset_size` sample KID; `cache_dir` holds the domain classifier
    and SSL encoder (None: the default, False: off); `seed` seeds splits,
    subsets, KID and the extractor; `block_size` the k-NN blocks (memory
    about 8 * block_size**2 bytes). `tfsynth run` keeps one in
    `RunConfig.evaluate` (its seed is the run's).

    The in-run low-data curve is off: its generator saw all the training
    data, so bench/low_data.py's end-to-end curve is the honest one.

    Example:

    >>> cfg = EvaluateConfig(seeds=1, low_data_sizes=()).validate()
    >>> cfg.replace(seed=3).seed, cfg.classifier_epochs, cfg.replace() == cfg
    (3, 8, True)
    >>> EvaluateConfig(min_steps=-1).validate()
    Traceback (most recent call last):
    ...
    tfsynth.errors.ConfigError: min_steps: expected an integer >= 0, got -1
    """

    COMMAND = "evaluate"

    extractor: str = "auto"
    max_samples: int | None = None
    classifier_epochs: int = CLASSIFIER_EPOCHS
    extractor_epochs: int = CLASSIFIER_EPOCHS
    seeds: int | tuple[int, ...] = 3
    low_data_sizes: tuple[int, ...] | None = DEFAULT_LOW_DATA_SIZES
    min_steps: int = 300
    reference: str = "test"
    test_fraction: float = 0.2
    utility: bool = True
    privacy: bool = True
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    cache_dir: Any = None  # a directory, None (the default one) or False (no cache)
    seed: int = 0
    block_size: int = DEFAULT_BLOCK_SIZE

    def validate(self) -> EvaluateConfig:
        """Raises ConfigError naming the first bad field, before any work is done."""
        from tfsynth.evaluation.evaluate import check_options

        names = ("extractor", "max_samples", "classifier_epochs", "extractor_epochs", "seeds",
                 "low_data_sizes", "min_steps", "reference", "test_fraction")  # fmt: skip
        check_options(**{name: getattr(self, name) for name in names})
        return self


def _run_evaluate(**changes) -> EvaluateConfig:
    # A run caps each side at 2,000 samples and trains 2 seeds (as many as
    # the search's, whose D and D' runs TRTR reuses), and draws no low-data
    # curve (see EvaluateConfig).
    return EvaluateConfig(**{"max_samples": 2000, "seeds": 2, "low_data_sizes": (), **changes})


@dataclass
class SemiConfig:
    """D_pseudo in `run --unlabeled SPEC`: an SSL encoder, then pseudo-labels.

    With `unlabeled` set, the run trains a `tfsynth ssl` encoder on the
    training split's and the unlabelled images (labels unused), labels the
    unlabelled images from the training split (`tfsynth pseudo-label`) and
    lets the search of the mix add `pseudo_shares` of the kept images to
    every candidate (none: the candidates without them stay in the grid).
    The other settings default to `SSLConfig`'s and `PseudoLabelConfig`'s.

    Example:

    >>> semi = SemiConfig(unlabeled="mnist-10k[1000:3000]", ssl_epochs=2).validate()
    >>> semi.ssl_config(seed=1).epochs, semi.pseudo_config(ssl="runs/r/ssl").ssl
    (2, 'runs/r/ssl')
    """

    unlabeled: str | None = None
    ssl_epochs: int = SSLConfig.epochs
    ssl_batch_size: int = SSLConfig.batch_size
    ssl_width: int = SSLConfig.width
    ssl_feature_dim: int = SSLConfig.feature_dim
    method: str = PseudoLabelConfig.method
    k: int = PseudoLabelConfig.k
    min_confidence: float = PseudoLabelConfig.min_confidence
    seed_confidence: float = PseudoLabelConfig.seed_confidence
    pseudo_shares: tuple[float, ...] = (1.0,)

    def ssl_config(self, seed: int = 0) -> SSLConfig:
        """The `tfsynth ssl` settings (its data spec is filled in by the run)."""
        return SSLConfig(epochs=self.ssl_epochs, batch_size=self.ssl_batch_size,
                         width=self.ssl_width, feature_dim=self.ssl_feature_dim, seed=seed)  # fmt: skip

    def pseudo_config(self, *, ssl: str, labeled: str = "", seed: int = 0) -> PseudoLabelConfig:
        """The `tfsynth pseudo-label` settings with the encoder in run directory `ssl`."""
        return PseudoLabelConfig(labeled=labeled, unlabeled=self.unlabeled or "", ssl=ssl,
                                 method=self.method, k=self.k, min_confidence=self.min_confidence,
                                 seed_confidence=self.seed_confidence, seed=seed)  # fmt: skip

    def validate(self) -> SemiConfig:
        """Raises ConfigError naming the first bad field (`pseudo_shares`: by the search's).

        >>> SemiConfig(unlabeled="u", ssl_epochs=0).validate()
        Traceback (most recent call last):
        ...
        tfsynth.errors.ConfigError: semi.ssl_epochs: expected a positive integer, got 0
        """
        for prefix, check in (("ssl_", self.ssl_config), ("", lambda: self.pseudo_config(ssl=""))):
            try:
                check().validate()
            except ConfigError as e:  # "epochs: ..." or "--min-confidence: ..." -> semi.FIELD
                name, _, why = str(e).partition(": ")
                name = name.lstrip("-").replace("-", "_")
                raise ConfigError(f"semi.{prefix}{name}: {why}") from None
        return self


@dataclass
class RunConfig:
    """The whole pipeline: data -> D_aug + D_gen -> D' -> validation -> export."""

    preset: str = "quick"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    generate: GenerateConfig = field(default_factory=_run_generate)
    fuse: FuseConfig = field(default_factory=FuseConfig)
    evaluate: EvaluateConfig = field(default_factory=_run_evaluate)
    semi: SemiConfig = field(default_factory=SemiConfig)

    def validate(self) -> RunConfig:
        """Raises ConfigError naming the first invalid field."""
        models = self.train.models
        bad = [m for m in models if m not in MODELS]
        if not models or bad:
            raise ConfigError(
                f"train.model: {self.train.model!r} is not one of {', '.join(MODELS)} "
                "(or a comma-separated list of them)"
            )
        if len(set(models)) != len(models):
            raise ConfigError(f"train.model: {self.train.model!r} names a model twice")
        for name, value in [
            ("train.steps", self.train.steps),
            ("train.batch_size", self.train.batch_size),
            ("evaluate.seeds", self.evaluate.seeds),
            ("fuse.search_seeds", self.fuse.search_seeds),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        from tfsynth.validation import SELECT

        self.train.validate_per_model()
        self.train.check_dp()
        if self.train.select not in SELECT:
            raise ConfigError(
                f"train.select: expected one of {', '.join(SELECT)}, got {self.train.select!r}"
            )
        for name in ("augment", "generate", "evaluate"):
            try:
                getattr(self, name).validate()
            except ConfigError as e:  # "steps: ..." or "--min-confidence: ..." -> generate.FIELD
                field_name, _, why = str(e).partition(": ")
                field_name = field_name.lstrip("-").replace("-", "_")
                raise ConfigError(f"{name}.{field_name}: {why}") from None
        if self.fuse.search:
            self.search_config().validate()
        if self.semi.unlabeled:
            self.semi.validate()
        d = self.data
        vf = 0.2 if d.val_fraction == "auto" else d.val_fraction  # the larger "auto" value
        if not (
            isinstance(vf, (int, float))
            and 0 < vf < 1
            and 0 < d.test_fraction < 1
            and vf + d.test_fraction < 1
        ):
            raise ConfigError(
                "data.val_fraction ('auto' or a number) and data.test_fraction must be in (0, 1) "
                "and sum to < 1"
            )
        return self

    def search_config(self):
        """The `tfsynth.fusion.search.SearchConfig` of this run."""
        from tfsynth.fusion.search import SearchConfig

        e, f = self.evaluate, self.fuse
        multipliers = f.multipliers if isinstance(f.multipliers, str) else tuple(f.multipliers)
        return SearchConfig(
            multipliers=multipliers,
            gen_shares=tuple(f.gen_shares),
            min_confidences=tuple(f.min_confidences),
            seeds=f.search_seeds,
            epochs=e.classifier_epochs,
            min_steps=e.min_steps,
            pseudo_shares=tuple(self.semi.pseudo_shares),
        )

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
        elif isinstance(default, tuple) or isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _smoke() -> RunConfig:
    return RunConfig(
        preset="smoke",
        data=DataConfig(spec="mnist-10k[:600]"),
        train=TrainConfig(model="cgan", steps=20, batch_size=32, width=8, latent_dim=16),
        augment=AugmentConfig(num_examples=200),
        generate=_run_generate(num_examples=200, min_confidence=0.2),
        fuse=FuseConfig(num_shards=2, gen_shares=(0.0, 0.5), min_confidences=(0.2,)),
        evaluate=_run_evaluate(
            max_samples=200,
            classifier_epochs=1,
            extractor_epochs=1,
            seeds=1,
            min_steps=20,
        ),
        # An encoder that trains in seconds: its pseudo-labels are poor, hence
        # the low thresholds (the smoke run checks the wiring, not the labels).
        semi=SemiConfig(
            ssl_epochs=1,
            ssl_batch_size=64,
            ssl_width=4,
            ssl_feature_dim=16,
            min_confidence=0.3,
            seed_confidence=0.3,
        ),
    )


def _quick() -> RunConfig:
    # SSL as bench/semi_supervised.py measured it (pseudo-label accuracy 0.98
    # on 86% kept from 100 labels): about 6 minutes per 7,000 images here.
    return RunConfig(preset="quick", semi=SemiConfig(ssl_epochs=20, ssl_batch_size=128))


def _full() -> RunConfig:
    return RunConfig(
        preset="full",
        train=TrainConfig(model="cgan,cvae", steps=6000, width=48, latent_dim=64),
        augment=AugmentConfig(num_examples=10000),
        fuse=FuseConfig(
            multipliers=(1.0, 2.0),
            gen_shares=(0.0, 0.5, 1.0),
            min_confidences=(0.5, 0.9),
            search_seeds=3,
        ),
        evaluate=_run_evaluate(seeds=3),
    )


PRESETS = {"smoke": _smoke, "quick": _quick, "full": _full}

# Per preset, the settings of a family that differ from the preset's
# TrainConfig: the one place these defaults live (`preset` copies the
# entries of the models a run trains into `train.per_model`). ddpm "quick"
# is sized from bench/results/ddpm_quick.json (training steps/s of width x
# batch at 28x28 on the 2-core CPU): width 16 at batch 64 made the most
# images/s, and 1,000 steps plus ten validation passes at 8 DDIM steps fit
# about 15 minutes; the learning rate is keras.io's DDIM example's, as the
# budget is short. "full" (a U-Net 4x as wide, 50 DDIM steps) is meant for
# a GPU and is not measured here.
MODEL_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {"ddpm": {"width": 8, "sample_steps": 2}},
    "quick": {"ddpm": {"steps": 1000, "width": 16, "learning_rate": 1e-3, "sample_steps": 8}},
    "full": {
        "ddpm": {"steps": 40000, "batch_size": 128, "width": 64, "learning_rate": 2e-4,
                 "sample_steps": 50},
    },
}  # fmt: skip


def preset(
    name: str = "quick",
    *,
    data: str | None = None,
    model: str | None = None,
    seed: int | None = None,
    unlabeled: str | None = None,
) -> RunConfig:
    """A preset config with optional overrides of the data spec, model, seed and unlabelled set."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: {name!r} is not one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    if data is not None:
        cfg.data.spec = data
    if model is not None:
        cfg.train.model = model
    if seed is not None:
        cfg.seed = seed
    if unlabeled is not None:
        cfg.semi.unlabeled = unlabeled
    settings = MODEL_SETTINGS[name]
    cfg.train.per_model = {m: copy.deepcopy(settings[m]) for m in cfg.train.models if m in settings}
    return cfg.validate()
