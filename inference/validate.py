"""Checks of numeric options and texts at the CLI and API boundaries: a clear error instead of silent zeros.

Example:
    >>> positive_int("8")
    8
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 0 is not a positive integer
    >>> check_positive("batch_size", -1)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive integer, got -1
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts that must be at least 1 (batch sizes, k, chunk sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def non_negative_float(text: str) -> float:
    """An argparse ``type`` for weights that must be 0 or more (and finite)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and math.isfinite(value)):  # NaN fails the comparison
        raise argparse.ArgumentTypeError(f"{value} is not a finite number of 0 or more")
    return value


def unit_float(text: str) -> float:
    """An argparse ``type`` for a weight in [0, 1] (a fusion's share)."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def check_positive(name: str, value: int | None, allow_none: bool = False) -> None:
    """Raise ValueError unless ``value`` is an int >= 1 (or None where ``allow_none``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def text_problem(value: object) -> str | None:
    r"""Why ``value`` is not text a tokenizer can take (None if it is): not a string, or a string with a lone
    surrogate (which only the Python API can pass: a file is decoded strictly).

    >>> text_problem("drug coated balloon") is None
    True
    >>> text_problem("balloon \udc80")
    "not valid Unicode: a lone surrogate '\\udc80' at character 9"
    """
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"not valid Unicode: a lone surrogate {value[err.start]!r} at character {err.start + 1}"
    return None


def check_texts(texts: Sequence[object], what: str = "text") -> None:
    """Raise one ValueError naming the first of ``texts`` that is not text (:func:`text_problem`)."""
    for n, value in enumerate(texts, start=1):
        problem = text_problem(value)
        if problem:
            raise ValueError(f"{what} {n} of {len(texts)}: {problem}")

