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

    info = describe(args.spec)
    if args.json:
        _print_json(info)
        return
    print(
        f"{info['name']}: {info['num_examples']} images, shape {'x'.join(map(str, info['shape']))}, "
        f"{info['num_classes']} classes{' (streamed)' if info['streamed'] else ''}"
    )
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


# Each entry adds one subcommand; later stages append theirs here.
COMMANDS: list[Callable] = [_add_data]


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
        args.func(args)
    except tfsynth.TfsynthError as e:
        if args.debug:
            raise
        print(f"tfsynth: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("tfsynth: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
