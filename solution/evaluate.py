"""Evaluation entry point: ``python -m solution.evaluate embedder --run runs/NAME --corpus CSV``.

Subcommands: ``embedder`` (retrieval embedders; see ``python -m solution.evaluate embedder --help``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    if argv[0] == "embedder":
        from solution.embedder.evaluate import main as embedder_main

        embedder_main(argv[1:])
        return
    raise SystemExit(f"unknown evaluation {argv[0]!r}; available: embedder")


if __name__ == "__main__":
    main()
