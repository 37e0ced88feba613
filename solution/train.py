"""Training entry point: ``python -m solution.train [--help]`` (phrase matcher) and
``python -m solution.train embedder [--help]`` (retrieval embedders).

A thin dispatcher, so neither trainer imports the other: the phrase matcher lives in
``solution/phrase/train.py``, the embedder in ``solution/embedder/train.py``, and what both use
(run folder, LoRA, precision, config machinery) at ``solution/``'s root.
"""

from __future__ import annotations

import sys

from solution.runtime import tune_malloc


def main(argv: list[str] | None = None):
    tune_malloc()  # before torch allocates anything
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "embedder":
        from solution.embedder.train import main as embedder_main

        return embedder_main(argv[1:])
    from solution.phrase.train import main as phrase_main

    return phrase_main(argv)


if __name__ == "__main__":
    main()
