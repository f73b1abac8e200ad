import pytest

from tfsynth.config import PRESETS, RunConfig, preset
from tfsynth.errors import ConfigError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_validate_and_round_trip(name):
    cfg = preset(name)
    assert cfg.preset == name
    assert RunConfig.from_json(cfg.to_json()) == cfg


def test_overrides():
    cfg = preset("smoke", data="npz:x.npz", model="vae", seed=7)
    assert (cfg.data.spec, cfg.train.model, cfg.seed) == ("npz:x.npz", "vae", 7)


def test_bad_values_name_the_field():
    with pytest.raises(ConfigError, match="train.model: 'gpt' is not one of"):
        preset("smoke", model="gpt")
    with pytest.raises(ConfigError, match="--preset: 'huge'"):
        preset("huge")
    with pytest.raises(ConfigError, match=r"train\.: unknown field\(s\) epoch"):
        RunConfig.from_dict({"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{")
    cfg = preset("smoke")
    cfg.train.steps = 0
    with pytest.raises(ConfigError, match="train.steps: expected a positive integer"):
        cfg.validate()


@pytest.mark.parametrize(
    "field, value, message",
    [
        (("train", "select"), "loss", "train.select: expected one of fid, agreement, got 'loss'"),
        (("train", "model"), "cgan,gpt", "train.model: 'cgan,gpt' is not one of"),
        (("train", "model"), "cgan,cgan", "names a model twice"),
        (
            ("generate", "min_confidence"),
            1.0,
            "generate.min_confidence: expected a number in (0, 1)",
        ),
        (("fuse", "min_confidences"), (0.0,), "search.min_confidences: expected numbers in (0, 1)"),
        (("fuse", "multipliers"), (-1.0,), "search.multipliers: expected numbers >= 0"),
        (("fuse", "gen_shares"), (), "search.gen_shares: expected numbers in [0, 1], got []"),
        (("fuse", "search_seeds"), 0, "fuse.search_seeds: expected a positive integer"),
        (("semi", "pseudo_shares"), (0.0,), "search.pseudo_shares: expected numbers in (0, 1]"),
    ],
)
def test_new_fields_are_validated(field, value, message):
    cfg = preset("quick")
    setattr(getattr(cfg, field[0]), field[1], value)
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert message in str(e.value)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("ssl_epochs", 0, "semi.ssl_epochs: expected a positive integer, got 0"),
        ("min_confidence", 1.5, "semi.min_confidence: expected a number in (0, 1), got 1.5"),
        ("method", "vote", "semi.method: expected one of propagate, knn, linear"),
    ],
)
def test_semi_settings_are_checked_only_with_unlabeled_data(field, value, message):
    cfg = preset("smoke")
    setattr(cfg.semi, field, value)
    cfg.validate()  # no --unlabeled: the settings are unused
    cfg.semi.unlabeled = "mnist-10k[600:900]"
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert message in str(e.value)
    ok = preset("smoke", unlabeled="mnist-10k[600:900]")
    assert ok.semi.ssl_config(seed=3).seed == 3 and RunConfig.from_json(ok.to_json()) == ok


def test_models_list_and_search_config():
    cfg = preset("full")
    assert cfg.train.models == ["cgan", "cvae"]
    search = cfg.search_config()
    assert search.multipliers == (1.0, 2.0) and search.seeds == 3
    assert search.epochs == cfg.evaluate.classifier_epochs


def test_per_model_settings_come_from_one_table():
    from tfsynth.config import MODEL_SETTINGS

    cfg = preset("quick", model="cgan,ddpm")
    assert cfg.train.per_model == {"ddpm": MODEL_SETTINGS["quick"]["ddpm"]}
    assert cfg.train.per_model["ddpm"] is not MODEL_SETTINGS["quick"]["ddpm"]  # a copy
    ddpm, cgan = cfg.train.for_model("ddpm"), cfg.train.for_model("cgan")
    assert ddpm["steps"] != cgan["steps"] == cfg.train.steps
    assert (cgan["learning_rate"], cgan["sample_steps"], cgan["guidance"]) == (None, None, None)
    assert RunConfig.from_json(cfg.to_json()) == cfg
    assert preset("quick").train.per_model == {}  # only the models a run trains
    for name in PRESETS:
        assert preset(name, model="ddpm").train.for_model("ddpm")["sample_steps"] >= 1


@pytest.mark.parametrize(
    "per_model, message",
    [
        ({"gpt": {}}, "train.per_model.gpt: expected settings of one of"),
        ({"ddpm": {"epochs": 3}}, "train.per_model.ddpm: unknown setting(s) epochs"),
        ({"ddpm": {"steps": 0}}, "train.per_model.ddpm.steps: expected a positive integer"),
        (
            {"ddpm": {"guidance": -1}},
            "train.per_model.ddpm.guidance: expected a finite number >= 0",
        ),
        ({"ddpm": {"learning_rate": 0}}, "learning_rate: expected a finite number > 0"),
        ({"cgan": {"sample_steps": 4}}, "sample_steps and guidance are ddpm settings"),
    ],
)
def test_bad_per_model_settings_name_the_entry(per_model, message):
    cfg = preset("quick")
    cfg.train.per_model = per_model
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert message in str(e.value)


# -- one config per command: library default == CLI default == run's use ------


class _Captured(Exception):
    """Raised by a stub once it has recorded what the library was given."""


def test_generate_config_defaults_are_held_once(monkeypatch, tmp_path):
    import tfsynth.generation
    from tfsynth.cli import main
    from tfsynth.config import GenerateConfig

    seen = {}

    def fake(model, config, *, out, **options):
        seen.update(model=model, config=config, options=options)
        return {"num_examples": 5, "metadata": {"generator": {}}}

    monkeypatch.setattr(tfsynth.generation, "generate", fake)
    assert main(["generate", "--model", "m", "-n", "5", "--out", str(tmp_path / "g")]) == 0
    assert seen["config"] == GenerateConfig(num_examples=5) and seen["options"] == {}
    main(["generate", "--model", "m", "-n", "5", "--out", str(tmp_path / "g"),
          "--min-confidence", "0.8"])  # fmt: skip
    assert seen["config"] == GenerateConfig(num_examples=5, curate=True, min_confidence=0.8)
    # The run's: the class defaults but for what the presets set explicitly.
    run = preset("quick").generate
    assert run == GenerateConfig(labels="match", curate=True)
    assert preset("smoke").generate.replace(num_examples=None, min_confidence=0.9) == run


def test_generate_options_override_the_config(monkeypatch, tmp_path):
    import tfsynth.generation as generation
    from tfsynth.config import GenerateConfig

    seen = {}

    def fake_plan(model, n, **kwargs):
        seen.update(n=n, **kwargs)
        raise _Captured

    monkeypatch.setattr(generation, "ShardPlan", fake_plan)
    with pytest.raises(_Captured):
        generation.generate("m", GenerateConfig(num_examples=5, seed=1), out=tmp_path, seed=7)
    assert (seen["n"], seen["seed"], seen["batch_size"]) == (5, 7, GenerateConfig.batch_size)
    with pytest.raises(_Captured):
        generation.generate("m", 4, out=tmp_path, labels="match")  # the old call still works
    assert (seen["n"], seen["labels"]) == (4, "match")
    with pytest.raises(ConfigError, match=r"generate: unknown option\(s\) n$"):
        generation.generate("m", 4, out=tmp_path, n=3)


def test_augment_config_defaults_are_held_once(monkeypatch, tmp_path):
    import tfsynth.augment
    from tfsynth.cli import main
    from tfsynth.config import AugmentConfig

    seen = {}

    def fake(data, config, *, out, **options):
        seen.update(data=data, config=config, options=options)
        return {"num_examples": config.num_examples}

    monkeypatch.setattr(tfsynth.augment, "augment_to_dir", fake)
    assert main(["augment", "--data", "d", "-n", "7", "--out", str(tmp_path / "a")]) == 0
    assert seen["config"] == AugmentConfig(num_examples=7) and seen["options"] == {}
    assert preset("quick").augment == AugmentConfig()  # the run's: the class defaults
    assert preset("smoke").augment == AugmentConfig(num_examples=200)


def test_augment_options_override_the_config(tmp_path):
    import numpy as np

    from tfsynth.augment import augment_to_dir
    from tfsynth.config import AugmentConfig
    from tfsynth.data import ImageDataset

    ds = ImageDataset(np.zeros((6, 8, 8, 1), np.uint8), np.arange(6) % 2)
    cfg = AugmentConfig(policy="rotate:10", num_examples=50)
    m = augment_to_dir(ds, cfg, out=tmp_path / "a", num_examples=5, seed=3)
    assert m["num_examples"] == 5 and m["metadata"]["augment"]["seed"] == 3
    with pytest.raises(ConfigError, match=r"augment: unknown option\(s\) policies$"):
        augment_to_dir(ds, cfg, out=tmp_path / "b", policies="digits")


def test_evaluate_config_defaults_are_held_once(monkeypatch, tmp_path):
    import tfsynth.evaluation
    from tfsynth.cli import main
    from tfsynth.config import EvaluateConfig

    seen = {}

    def fake(real, synthetic, test, config, *, out, **options):
        seen.update(config=config, options=options)
        raise _Captured

    monkeypatch.setattr(tfsynth.evaluation, "evaluate_to_dir", fake)
    argv = ["evaluate", "--real", "r", "--synthetic", "s", "--out", str(tmp_path / "e")]
    with pytest.raises(_Captured):
        main(argv)
    assert seen["config"] == EvaluateConfig()
    assert seen["options"] == {"overwrite": False, "fused": None}
    with pytest.raises(_Captured):
        main([*argv, "--epochs", "2", "--no-utility", "--low-data-sizes", "none"])
    assert seen["config"] == EvaluateConfig(classifier_epochs=2, utility=False, low_data_sizes=())
    # The run's: the class defaults but for what the presets set explicitly.
    assert preset("quick").evaluate == EvaluateConfig(max_samples=2000, seeds=2, low_data_sizes=())
    assert preset("full").evaluate == preset("quick").evaluate.replace(seeds=3)


def test_evaluate_options_override_the_config(monkeypatch):
    import importlib

    from tfsynth.config import EvaluateConfig

    ev = importlib.import_module("tfsynth.evaluation.evaluate")  # the package's is the function

    seen = {}

    def fake_inputs(real, synthetic, test, fused, **kwargs):
        seen.update(kwargs)
        raise _Captured

    monkeypatch.setattr(ev, "_inputs", fake_inputs)
    with pytest.raises(_Captured):
        ev.evaluate("r", "s", None, EvaluateConfig(seed=1, test_fraction=0.3), seed=5)
    assert seen == {"test_fraction": 0.3, "seed": 5, "extractor": "auto"}
    with pytest.raises(_Captured):
        ev.evaluate("r", "s", seeds=1, low_data_sizes=None)  # the old keyword call
    with pytest.raises(ConfigError, match=r"evaluate: unknown option\(s\) epochs$"):
        ev.evaluate("r", "s", epochs=1)


@pytest.mark.parametrize(
    "section, field, value, message",
    [
        ("generate", "num_examples", 0, "generate.num_examples: expected a positive integer"),
        ("generate", "batch_size", 0, "generate.batch_size: expected a positive integer, got 0"),
        ("generate", "examples_per_shard", -1, "generate.examples_per_shard: expected a positive"),
        ("generate", "min_confidence", 1.5, "generate.min_confidence: expected a number in (0, 1)"),
        ("augment", "num_examples", 0, "augment.num_examples: expected an integer >= 1, got 0"),
        ("augment", "seed", -1, "augment.seed: expected an integer >= 0, got -1"),
        ("augment", "batch_size", "8", "augment.batch_size: expected an integer >= 1, got '8'"),
        ("augment", "preview", "p.gif", "augment.preview: p.gif must be a .png file"),
        ("evaluate", "max_samples", 5, "evaluate.max_samples: expected at least 10, got 5"),
        ("evaluate", "classifier_epochs", 0, "evaluate.classifier_epochs: expected a positive"),
        ("evaluate", "min_steps", -1, "evaluate.min_steps: expected an integer >= 0, got -1"),
        ("evaluate", "reference", "train", "evaluate.reference: expected one of test, real, got"),
        ("evaluate", "test_fraction", 1.0, "evaluate.test_fraction: expected a value in (0, 1)"),
    ],
)
def test_bad_command_values_name_the_field(section, field, value, message):
    """A run config names SECTION.FIELD in one line; the command's own config names FIELD."""
    cfg = preset("quick")
    setattr(getattr(cfg, section), field, value)
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=field.replace("_", "[_-]")):
        getattr(cfg, section).validate()
