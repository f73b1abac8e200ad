"""The `tfsynth` command line.

Every subcommand parses its arguments and calls one library function; no
logic lives here. Bad input (a `TfsynthError`) prints one line and exits
with status 2; `--debug` shows the traceback and TensorFlow's own logs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import tfsynth

EXIT_BAD_INPUT = 2


def _print_json(obj) -> None:
    from tfsynth.io import to_json

    sys.stdout.write(to_json(obj))


# -- data -----------------------------------------------------------------


def _cmd_data_info(args) -> None:
    from tfsynth.data.tools import describe

    info = describe(args.spec, unlabeled=args.unlabeled)
    if args.json:
        _print_json(info)
        return
    classes = f"{info['num_classes']} classes" if info["num_classes"] else "unlabelled"
    print(
        f"{info['name']}: {info['num_examples']} images, shape {'x'.join(map(str, info['shape']))}, "
        f"{classes}{' (streamed)' if info['streamed'] else ''}"
    )
    if not info["num_classes"]:
        return
    width = max(len(n) for n in info["class_names"])
    total = max(info["class_counts"].values())
    for name, count in info["class_counts"].items():
        bar = "#" * int(round(30 * count / max(total, 1)))
        print(f"  {name:>{width}}  {count:7d}  {bar}")


def _cmd_data_preview(args) -> None:
    from tfsynth.data.tools import preview

    path = preview(args.spec, args.out, n=args.n, seed=args.seed)
    print(f"wrote {path}")


def _cmd_data_convert(args) -> None:
    from tfsynth.data.tools import convert

    info = convert(args.spec, args.out, overwrite=args.overwrite)
    print(f"wrote {info['num_examples']} images to {info['out']}")


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="inspect, preview and convert datasets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="{info,preview,convert}")
    spec_help = "dataset spec: mnist-10k, tfds:NAME[:SPLIT], npz:PATH, idx:DIR, folder:DIR or DIR, with optional [a:b]"

    q = dsub.add_parser("info", help="count, shape, classes and class histogram")
    q.add_argument("spec", help=spec_help)
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--unlabeled", action="store_true", help="read the images without their labels")
    q.set_defaults(func=_cmd_data_info)

    q = dsub.add_parser("preview", help="save a labelled grid of examples as PNG")
    q.add_argument("spec", help=spec_help)
    q.add_argument("--out", required=True, help="output .png file")
    q.add_argument("-n", type=int, default=50, help="number of examples (default 50)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_cmd_data_preview)

    q = dsub.add_parser("convert", help="convert to an .npz file or a tfsynth dataset directory")
    q.add_argument("spec", help=spec_help)
    q.add_argument("--out", required=True, help="FILE.npz or a new directory")
    q.add_argument("--overwrite", action="store_true", help="replace an existing output")
    q.set_defaults(func=_cmd_data_convert)


# -- fuse / export ---------------------------------------------------------


def _csv(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _cmd_fuse_search(args) -> None:
    from tfsynth.errors import ConfigError
    from tfsynth.fusion.search import SearchConfig, build_searched

    if not args.val:
        raise ConfigError("--search: needs --val SPEC, the validation split that scores each mix")
    for flag in ("ratios", "counts", "shard_index", "aug", "size"):
        if getattr(args, flag) is not None:  # 0 is a given --shard-index
            raise ConfigError(f"--search: chooses the mix itself; drop --{flag.replace('_', '-')}")
    if args.steps is not None or args.guidance is not None:
        raise ConfigError(
            "--search: samples a ddpm with its saved DDIM settings; drop --steps, --guidance"
        )
    config = SearchConfig(
        **{
            k: getattr(args, f"search_{k}")
            for k in ("multipliers", "gen_shares", "min_confidences", "seeds")
            if getattr(args, f"search_{k}") is not None
        }
    )
    m = build_searched(
        args.real,
        args.val,
        out=args.out,
        aug_policy=args.aug_policy,
        gen=args.gen,
        pseudo=args.pseudo,
        config=config,
        seed=args.seed,
        class_target=args.class_target,
        overwrite=args.overwrite,
        log=print,
        num_shards=args.num_shards,
        examples_per_shard=args.examples_per_shard,
        format=args.format,
    )
    chosen = m["metadata"]["fusion"]["config"]["extra"]["search"]
    print(
        f"chose {chosen['table'][chosen['chosen']]['label']} on --val; wrote "
        f"{m['num_examples']} examples to {args.out}"
    )


def _cmd_fuse(args) -> None:
    from tfsynth.beam.options import check_runner
    from tfsynth.fusion import build_fused

    check_runner(args.runner, args.beam_options)
    if args.runner == "beam":
        _check_beam_fuse(args)
    if args.search:
        return _cmd_fuse_search(args)

    fields = {
        k: getattr(args, k)
        for k in (
            "real", "aug", "aug_policy", "gen", "ratios", "counts", "size", "class_target",
            "seed", "num_shards", "examples_per_shard", "memorization_threshold",
            "min_confidence", "classifier", "batch_size", "format", "pseudo",
        )
    }  # fmt: skip
    fields.update(gen_steps=args.steps, gen_guidance=args.guidance)
    if args.runner == "beam":
        from tfsynth.beam import BeamConfig, fuse_on_beam

        beam = BeamConfig(args.beam_options or "")
        result = fuse_on_beam(out=args.out, beam=beam, overwrite=args.overwrite, **fields)
    else:
        result = build_fused(
            out=args.out,
            shard_index=args.shard_index,
            merge_only=args.merge,
            overwrite=args.overwrite,
            **fields,
        )
    if args.shard_index is not None:
        print(
            f"wrote shard {args.shard_index} ({result['shard']['num_examples']} examples); "
            f"{result['finished']} of {result['num_shards']} shards done"
        )
        return
    totals = result["metadata"]["fusion"]["source_totals"]
    mix = ", ".join(f"{k} {v}" for k, v in totals.items())
    print(f"wrote {result['num_examples']} examples ({mix}) to {args.out}")


def _check_beam_fuse(args) -> None:
    from tfsynth.errors import ConfigError

    for flag in ("search", "shard_index", "merge"):
        if getattr(args, flag) is not None and getattr(args, flag) is not False:  # 0 is given
            raise ConfigError(
                f"--runner beam: runs and merges every shard itself; drop --{flag.replace('_', '-')}"
            )


def _add_runner_options(p) -> None:
    p.add_argument(
        "--runner", default="local", help="local (default) or beam: one Beam element per shard"
    )
    p.add_argument(
        "--beam-options",
        help='Beam pipeline options for --runner beam, e.g. "--runner=DataflowRunner '
        '--project=P --region=R --temp_location=gs://B/tmp" (default: the DirectRunner)',
    )


def _add_fuse(sub) -> None:
    from tfsynth.config import FuseConfig

    p = sub.add_parser(
        "fuse",
        help="build D' from real, augmented and generated data (sharded TFRecord or TFDS)",
    )
    p.add_argument("--real", default="mnist-10k", help="real data spec (default mnist-10k)")
    p.add_argument("--aug", help="augmented dataset spec (e.g. a `tfsynth augment` output)")
    p.add_argument("--aug-policy", help="or an augmentation policy applied on the fly to --real")
    p.add_argument("--gen", help="generated dataset spec, or a model.keras (or its run dir)")
    p.add_argument("--pseudo", help="a pseudo-label dataset directory (D_pseudo)")
    p.add_argument("--ratios", help="e.g. real=0.5,aug=0.25,gen=0.25 (default: real half)")
    p.add_argument(
        "--search",
        action="store_true",
        help="choose the mix on --val: real only vs real + m x synthetic (see --search-*)",
    )
    p.add_argument("--val", help="validation data spec for --search")
    d = FuseConfig()
    p.add_argument(
        "--search-multipliers", type=_float_list, help=f"e.g. 1,2 (default {d.multipliers})"
    )
    p.add_argument(
        "--search-gen-shares", type=_float_list, help=f"e.g. 0,0.5,1 (default {_csv(d.gen_shares)})"
    )
    p.add_argument(
        "--search-min-confidences",
        type=_float_list,
        help=f"e.g. 0.9 (default {_csv(d.min_confidences)})",
    )
    p.add_argument(
        "--search-seeds", type=int, help=f"classifier seeds per mix (default {d.search_seeds})"
    )
    p.add_argument("--counts", help="exact counts instead of ratios, e.g. real=5000,gen=5000")
    p.add_argument(
        "--size", type=int, help="size of D' with --ratios (default: all real data once)"
    )
    p.add_argument(
        "--class-target",
        default="match",
        help="match (real class distribution), uniform, pool (each source's classes as it holds "
        "them; for --pseudo) or CLASS=WEIGHT,... (default match)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-shards", type=int, help="number of output shards")
    p.add_argument("--examples-per-shard", type=int, default=10_000)
    p.add_argument("--shard-index", type=int, help="build only this shard (distributed workers)")
    p.add_argument("--merge", action="store_true", help="merge shards built with --shard-index")
    p.add_argument(
        "--memorization-threshold",
        type=float,
        help="drop generated images closer than this to a real image (L2, pixels in [0, 1])",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        help="curate a --gen model: keep a sample when the real-data classifier predicts its "
        "label with at least this probability (0 < T < 1); unconditional models get the "
        "classifier's labels",
    )
    p.add_argument(
        "--classifier",
        help="the curating classifier .keras (default: classifier.keras next to the --gen model)",
    )
    _add_ddim_options(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--format", default="tfsynth", help="tfsynth (default) or tfds")
    _add_runner_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_cmd_fuse)


def _cmd_export(args) -> None:
    from tfsynth.export import export_generator

    path = export_generator(args.model, args.out, version=args.version)
    print(f"wrote {path}")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a generator as a TF Serving SavedModel")
    p.add_argument("--model", required=True, help="DIR/model.keras (or its run directory)")
    p.add_argument("--out", required=True, help="saved_models/NAME; writes NAME/VERSION/")
    p.add_argument("--version", type=int, help="version number (default: the next free one)")
    p.set_defaults(func=_cmd_export)


def _cmd_evaluate(args) -> None:
    from tfsynth.config import EvaluateConfig
    from tfsynth.data import load_dataset
    from tfsynth.evaluation import evaluate_to_dir

    s = evaluate_to_dir(
        load_dataset(args.real, unlabeled=True) if args.unlabeled else args.real,
        args.synthetic,
        args.test,
        _config_of(EvaluateConfig, args),
        out=args.out,
        overwrite=args.overwrite,
        fused=args.fused,
    )
    from tfsynth.evaluation.evaluate import HEADLINE

    for note in ("extractor_note", "utility_note"):  # e.g. unlabelled --real
        if note in s:
            print(f"note: {s[note]}")
    print(", ".join(f"{k} {s[k]:.4g}" for k in HEADLINE if isinstance(s.get(k), float)))
    print(f"wrote {s['out']}/report.html ({s['extractor']} features, {s['seconds.total']:.0f} s)")


def _int_list(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _add_evaluate(sub) -> None:
    from tfsynth.config import EvaluateConfig as d  # the defaults, held there once

    p = sub.add_parser(
        "evaluate", help="validate synthetic data: FID/KID/PRDC, utility (TSTR, D vs D'), privacy"
    )
    p.add_argument("--real", required=True, help="real training data spec (what the generator saw)")
    p.add_argument(
        "--unlabeled",
        action="store_true",
        help="read --real without its labels: label-free metrics on an SSL encoder, no utility",
    )
    p.add_argument(
        "--synthetic", required=True, help="synthetic data spec (e.g. a generate output)"
    )
    p.add_argument("--test", help="held-out real data spec (default: 20%% split off --real)")
    p.add_argument("--fused", help="an explicit D' for D vs D' (default: real + synthetic)")
    p.add_argument("--out", required=True, help="new output directory (summary.json, report.html)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument(
        "--extractor",
        help=f"{d.extractor} (default: domain, or with unlabelled --real an SSL encoder trained "
        "on it), domain, inception[:WEIGHTS.h5], keras:MODEL.keras:LAYER or ssl:DIR",
    )
    p.add_argument("--max-samples", type=int, help="cap per side for distribution/privacy metrics")
    p.add_argument(
        "--epochs",
        dest="classifier_epochs",
        metavar="EPOCHS",
        type=int,
        help="classifier epochs (step budget of the real set) for utility "
        f"(default {d.classifier_epochs})",
    )
    p.add_argument(
        "--extractor-epochs",
        type=int,
        help="epochs of the extractor trained on --real (domain classifier or SSL encoder; "
        f"default {d.extractor_epochs})",
    )
    p.add_argument("--seeds", type=int, help=f"utility seeds, mean and std (default {d.seeds})")
    sizes = ",".join(map(str, d.low_data_sizes))
    p.add_argument(
        "--low-data-sizes",
        type=_int_list,
        help=f"real subset sizes for the low-data curve, or none (default {sizes})",
    )
    p.add_argument(
        "--min-steps",
        type=int,
        help=f"least steps of any classifier training (default {d.min_steps})",
    )
    p.add_argument(
        "--reference", help=f"real set for FID etc.: test or real (default {d.reference})"
    )
    p.add_argument("--kid-subsets", type=int, help=f"default {d.kid_subsets}")
    p.add_argument(
        "--no-utility",
        dest="utility",
        action="store_false",
        default=None,
        help="skip the classifier trainings",
    )
    p.add_argument(
        "--no-privacy",
        dest="privacy",
        action="store_false",
        default=None,
        help="skip the nearest-neighbour distances",
    )
    p.add_argument(
        "--cache-dir",
        help="domain classifier cache (default $TFSYNTH_CACHE_DIR, else ~/.cache/tfsynth)",
    )
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.set_defaults(func=_cmd_evaluate)


# -- train / generate ------------------------------------------------------


def _cmd_train(args) -> None:
    from tfsynth.config import FitConfig
    from tfsynth.data import load_dataset
    from tfsynth.training import train

    data = load_dataset(args.data)
    val = load_dataset(args.val) if args.val else None
    cfg = _config_of(FitConfig, args).replace(dp=_dp_of(args))
    if args.no_xla:
        cfg = cfg.replace(jit_compile=False)
    s = train(data, cfg, out=args.out, val=val, verbose=0 if args.quiet else "auto").summary
    print(
        f"trained {s['model']} for {s['steps']} steps ({s['images_per_second']:.0f} images/s); "
        f"wrote {s['model_path']}"
    )
    if "dp_epsilon" in s:
        print(f"differentially private: epsilon {s['dp_epsilon']:.3g} at delta {s['dp_delta']:g}")
    if "val_fid" in s:
        agreement = s.get("val_label_agreement")
        print(
            f"best on {args.val} at step {s['val_best_step']}: val FID {s['val_fid']:.2f}"
            + (f", label agreement {agreement:.3f}" if agreement is not None else "")
            + (f"; FAILED: {s['generator_failed_reason']}" if s.get("generator_failed") else "")
        )


def _dp_of(args):
    """The `DPConfig` of the --dp-* flags given, or None when none is."""
    from tfsynth.privacy import DPConfig

    given = {f: getattr(args, f"dp_{f}", None) for f in DPConfig.__dataclass_fields__}
    given = {f: v for f, v in given.items() if v is not None}
    return DPConfig(**given) if given else None


def _add_dp_flags(p) -> None:
    """The --dp-* flags of `train` and `run` (absent: `DPConfig`'s defaults, see `_dp_of`)."""
    from tfsynth.privacy.config import DEFAULT_CLIP, DEFAULT_DELTA

    p.add_argument(
        "--dp-epsilon", type=float, help="train with DP-SGD to this budget (gan, vae models)"
    )
    p.add_argument(
        "--dp-delta", type=float, help=f"the budget's delta (default {DEFAULT_DELTA:g}; < 1/n)"
    )
    p.add_argument(
        "--dp-clip",
        type=float,
        help=f"per-example gradient L2 clip norm (default {DEFAULT_CLIP:g})",
    )
    p.add_argument(
        "--dp-noise-multiplier", type=float, help="noise std / clip (default: from the budget)"
    )


def _add_train(sub) -> None:
    from tfsynth.config import FitConfig
    from tfsynth.models import MODEL_NAMES
    from tfsynth.training import PRECISIONS, STRATEGIES

    p = sub.add_parser("train", help="train a GAN, VAE or ddpm on a dataset (D_gen)")
    p.add_argument("--data", required=True, help="dataset spec, e.g. 'mnist-10k[:8000]'")
    p.add_argument("--model", choices=MODEL_NAMES, help=f"default {FitConfig.model}")
    p.add_argument(
        "--epochs", type=int, help=f"passes over the data (default {FitConfig.DEFAULT_EPOCHS})"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="train for this many optimizer steps instead"
    )
    p.add_argument(
        "--out", required=True, help="run directory (model.keras, tensorboard/, samples/)"
    )
    p.add_argument(
        "--val",
        help="validation data spec: val/fid and val/label_agreement while training, best model kept",
    )
    p.add_argument("--eval-every", type=int, default=None, help="epochs between validations")
    p.add_argument("--select", help="keep the best model by fid (default) or agreement")
    p.add_argument("--batch-size", type=int, help=f"default {FitConfig.batch_size}")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--width", type=int, default=None, help="network width (channels)")
    p.add_argument("--latent-dim", type=int, default=None)
    p.add_argument(
        "--lr", dest="learning_rate", type=float, help="learning rate (default: the model's)"
    )
    p.add_argument("--loss", choices=["dcgan", "hinge", "wgan-gp"], default=None, help="cgan loss")
    p.add_argument("--n-critic", type=int, default=None)
    p.add_argument(
        "--ema", dest="ema_decay", type=float, help="EMA decay (0 disables; default 0.999)"
    )
    p.add_argument("--diffaugment", default=None, help="e.g. translation,cutout,color")
    p.add_argument("--beta", type=float, help="VAE KL weight (default 1)")
    p.add_argument("--strategy", choices=STRATEGIES)
    p.add_argument("--precision", choices=PRECISIONS, help="default float32")
    p.add_argument(
        "--no-xla",
        action="store_true",
        help="never jit-compile train_step (default: XLA on GPU/TPU only)",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=None, help="also checkpoint every N steps"
    )
    p.add_argument("--steps-per-epoch", type=int, default=None)
    _add_dp_flags(p)
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)


def _cmd_generate(args) -> None:
    from tfsynth.beam.options import check_runner
    from tfsynth.generation import GenerateConfig, generate, plan_args

    check_runner(args.runner, args.beam_options)
    cfg = _config_of(GenerateConfig, args)
    if args.min_confidence is not None or args.classifier is not None:
        cfg = cfg.replace(curate=True)  # a threshold or a classifier means curation
    if args.runner == "beam":
        from tfsynth.beam import BeamConfig, generate_on_beam

        beam = BeamConfig(args.beam_options or "")
        m = generate_on_beam(args.model, cfg.num_examples, out=args.out, beam=beam,
                             overwrite=cfg.overwrite, **plan_args(cfg))  # fmt: skip
    else:
        m = generate(args.model, cfg, out=args.out)
    kept = m["metadata"]["generator"].get("curation", {}).get("kept_fraction")
    note = f" (curated: kept {kept:.1%} of the candidates)" if kept is not None else ""
    print(f"wrote {m['num_examples']} images to {args.out}{note}")


def _add_generate(sub) -> None:
    from tfsynth.config import GenerateConfig as d  # the defaults, held there once

    p = sub.add_parser("generate", help="sample a trained model into a dataset directory")
    p.add_argument("--model", required=True, help="DIR/model.keras or the run DIR")
    p.add_argument(
        "-n", dest="num_examples", metavar="N", type=int, required=True, help="number of images"
    )
    p.add_argument(
        "--labels",
        help=f"uniform | match | comma-separated class ids (repeated; default {d.labels})",
    )
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--out", required=True, help="new dataset directory")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument(
        "--examples-per-shard", type=int, help=f"shard size (default {d.examples_per_shard})"
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--curate",
        action="store_true",
        help="keep only samples the real-data classifier confirms (exact class counts; "
        "unconditional models get the classifier's labels)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        help=f"curation threshold 0 < T < 1 (default {d.min_confidence}; implies --curate)",
    )
    p.add_argument(
        "--classifier",
        help="the curating classifier .keras (default: classifier.keras in the model's run "
        "directory; implies --curate)",
    )
    _add_ddim_options(p)
    _add_runner_options(p)
    p.set_defaults(func=_cmd_generate)


def _add_ddim_options(p) -> None:
    p.add_argument("--steps", type=int, help="ddpm: DDIM steps (default: the model's own)")
    p.add_argument(
        "--guidance",
        type=float,
        help="ddpm: classifier-free guidance, 0 unconditional, 1 conditional (default: the model's)",
    )


# -- augment ----------------------------------------------------------------


def _cmd_augment(args) -> None:
    from tfsynth.augment import augment_to_dir
    from tfsynth.config import AugmentConfig

    m = augment_to_dir(args.data, _config_of(AugmentConfig, args), out=args.out)
    print(f"wrote {m['num_examples']} augmented images to {args.out}")


def _add_augment(sub) -> None:
    from tfsynth.augment.policy import PRESETS, describe_ops
    from tfsynth.config import AugmentConfig as d  # the defaults, held there once

    p = sub.add_parser(
        "augment",
        help="write N augmented samples of a dataset (D_aug) with provenance",
        description="Ops (op:value, comma-separated; 0 switches an op off): "
        + "; ".join(describe_ops())
        + f"; fill:constant|nearest|reflect|wrap. Presets: {', '.join(PRESETS)}.",
    )
    p.add_argument("--data", required=True, help="dataset spec, e.g. 'mnist-10k[:8000]'")
    p.add_argument(
        "--policy",
        help=f"preset or spec, e.g. 'rotate:10,translate:0.1,zoom:0.1' (default {d.policy})",
    )
    p.add_argument(
        "-n",
        dest="num_examples",
        metavar="N",
        type=int,
        required=True,
        help="number of augmented images",
    )
    p.add_argument("--out", required=True, help="new dataset directory")
    p.add_argument(
        "--preview", default=None, help="also save originals beside augmentations (.png)"
    )
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_augment)


def _cmd_run(args) -> None:
    from tfsynth.config import preset
    from tfsynth.runner import run

    config = preset(
        args.preset, data=args.data, model=args.model, seed=args.seed, unlabeled=args.unlabeled
    )
    if args.test:
        config.data.test_spec = args.test
    config.train.dp = _dp_of(args)
    out = args.out or f"runs/{args.preset}"
    run(config, out=out, saved_models=args.saved_models)


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="the whole pipeline: split, augment, train, generate, fuse, evaluate, export, report",
    )
    p.add_argument("--data", help="real data spec (default: the preset's, mnist-10k)")
    p.add_argument(
        "--model",
        help="dcgan, wgan-gp, hinge, cgan, vae, cvae or ddpm, or a list such as cgan,ddpm "
        "(each is trained with its preset settings; the search picks; default: cgan)",
    )
    p.add_argument("--test", help="a held-out test set spec (default: a 20%% split of --data)")
    p.add_argument(
        "--unlabeled",
        help="unlabelled images: an SSL encoder and pseudo-labels add D_pseudo to the search "
        "of the mix (labels in this spec, if any, only score the pseudo-labels)",
    )
    p.add_argument(
        "--preset",
        default="quick",
        help="smoke (under a minute), quick (a few minutes on a CPU; default) or full",
    )
    p.add_argument("--seed", type=int, help="base seed of every stage (default 0)")
    p.add_argument("--out", help="run directory (default runs/PRESET); rerun it to resume")
    p.add_argument("--saved-models", default="saved_models", help="SavedModel export root")
    _add_dp_flags(p)
    p.set_defaults(func=_cmd_run)


# -- ssl / pseudo-label -------------------------------------------------------


def _config_of(cls, args):
    """`cls` (a config dataclass) from the flags given; absent flags keep its defaults."""
    given = {f: getattr(args, f, None) for f in cls.__dataclass_fields__}
    return cls(**{f: v for f, v in given.items() if v is not None})


def _cmd_ssl(args) -> None:
    from tfsynth.selfsup import SSLConfig, train_ssl

    s = train_ssl(
        _config_of(SSLConfig, args),
        args.out,
        overwrite=args.overwrite,
        log=None if args.quiet else print,
    )
    knn = f", probe k-NN accuracy {s['knn_accuracy']:.3f}" if "knn_accuracy" in s else ""
    print(
        f"trained the SSL encoder for {s['steps']} steps ({s['images_per_second']:.0f} images/s){knn}; wrote {s['model_path']}"
    )


def _add_ssl(sub) -> None:
    p = sub.add_parser(
        "ssl", help="train a self-supervised (SimCLR) encoder on images, labels unused"
    )
    p.add_argument("--data", required=True, help="image dataset spec (labelled or not)")
    p.add_argument(
        "--out", required=True, help="run directory (model.keras, tensorboard/); rerun to resume"
    )
    p.add_argument(
        "--probe", help="labelled spec: leave-one-out k-NN accuracy while training (reported only)"
    )
    for flag, typ in (("epochs", int), ("batch-size", int), ("width", int), ("feature-dim", int),
                      ("projection-dim", int), ("temperature", float), ("probe-every", int),
                      ("knn-k", int), ("seed", int)):  # fmt: skip
        p.add_argument(f"--{flag}", type=typ, help="default: see tfsynth.selfsup.SSLConfig")
    p.add_argument(
        "--lr", dest="learning_rate", type=float, help="Adam learning rate (cosine decay)"
    )
    p.add_argument("--policy", help="augmentation policy of the two views (default: strong digits)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run")
    p.add_argument("--quiet", action="store_true", help="no line per epoch")
    p.set_defaults(func=_cmd_ssl)


def _cmd_pseudo_label(args) -> None:
    from tfsynth.selfsup import PseudoLabelConfig, pseudo_label

    s = pseudo_label(
        _config_of(PseudoLabelConfig, args), args.out, overwrite=args.overwrite, log=print
    )
    acc = (
        f", pseudo-label accuracy {s['pseudo_label_accuracy']:.3f}"
        if "pseudo_label_accuracy" in s
        else ""
    )
    print(
        f"kept {s['num_kept']} of {s['num_unlabeled']} ({s['kept_fraction']:.1%}){acc}; wrote {args.out}"
    )


def _add_pseudo_label(sub) -> None:
    p = sub.add_parser(
        "pseudo-label", help="label unlabelled images from a few labelled ones (D_pseudo)"
    )
    p.add_argument("--labeled", required=True, help="labelled dataset spec (every class present)")
    p.add_argument(
        "--unlabeled", required=True, help="dataset spec; its labels, if any, only score the result"
    )
    p.add_argument(
        "--ssl", help="a `tfsynth ssl` run dir (default: train one on both sets into OUT-ssl)"
    )
    p.add_argument(
        "--method",
        choices=("propagate", "knn", "linear"),
        help="first labelling (default propagate)",
    )
    p.add_argument("--k", type=int, help="graph / k-NN neighbours (default 10)")
    p.add_argument(
        "--min-confidence", type=float, help="keep a pseudo-label at or above this (default 0.9)"
    )
    p.add_argument(
        "--seed-confidence",
        type=float,
        help="first labels at or above this train the self-training student (default 0.7)",
    )
    p.add_argument("--no-self-training", dest="self_training", action="store_false", default=None)
    p.add_argument("--ssl-epochs", type=int, help="epochs of the SSL encoder trained without --ssl")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", required=True, help="new dataset directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_pseudo_label)


# Each entry adds one subcommand; later stages append theirs here.
COMMANDS: list[Callable] = [
    _add_run,
    _add_data,
    _add_train,
    _add_generate,
    _add_augment,
    _add_fuse,
    _add_evaluate,
    _add_export,
    _add_ssl,
    _add_pseudo_label,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfsynth",
        description="Turn a small real image dataset into a larger, validated synthetic training set.",
    )
    parser.add_argument("--version", action="version", version=f"tfsynth {tfsynth.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from tfsynth.io import check_can_create

        # Outputs that cannot be created fail here, before any work is done.
        for name in ("out", "saved_models", "preview"):
            if getattr(args, name, None):
                check_can_create(getattr(args, name))
        args.func(args)
    except tfsynth.TfsynthError as e:
        if args.debug:
            raise
        print(f"tfsynth: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        # A file that cannot be read or written (missing, no permission, a
        # file where a directory should be, disk full) is bad input too.
        if args.debug:
            raise
        from tfsynth.io import os_error_message

        print(f"tfsynth: error: {os_error_message(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("tfsynth: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
