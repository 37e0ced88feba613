"""``python -m inference``: command-line tools over exported models.

    python -m inference score --model models/NAME --input test.csv --output submissions/NAME.csv
    python -m inference score --help
    python -m inference index --model models/NAME --corpus patents.csv --out indexes/NAME
    python -m inference search --index indexes/NAME --query "drug-coated balloon catheter" -k 10 [--hybrid]

Adding a subcommand: write a module with ``add_parser(subparsers)`` that creates its parser with
``subparsers.add_parser(NAME, help=..., description=...)`` and sets ``func`` (called with the parsed
args) through ``set_defaults(func=...)``; then list the module in ``SUBCOMMANDS`` below.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that register one subcommand each, in --help order.
SUBCOMMANDS: list[str] = [
    "inference.phrase.scorer",  # score
    "inference.retrieval.cli",  # index, search
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       help="run `python -m inference COMMAND --help` for its options")
    for module in SUBCOMMANDS:
        try:
            importlib.import_module(module).add_parser(subparsers)
        except ModuleNotFoundError as err:  # no ONNX runtime installed: one line naming the extra
            raise SystemExit(f"error: {err}") from None
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    args.func(args)


if __name__ == "__main__":
    main()
