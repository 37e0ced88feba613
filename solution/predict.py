"""Scoring entry point: ``python -m solution.predict --run runs/NAME --input CSV --output CSV``.

The phrase matcher's predictor lives in ``solution/phrase/predict.py``; see ``--help``.
"""

from __future__ import annotations

from solution.runtime import tune_malloc


def main(argv: list[str] | None = None) -> None:
    tune_malloc()
    from solution.phrase.predict import main as phrase_main

    phrase_main(argv)


if __name__ == "__main__":
    main()
