"""Checks of numeric options at the CLI and API boundaries: a clear error instead of silent zeros.

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
    """An argparse ``type`` for weights that must be 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"{value} is not 0 or more")
    return value


def check_positive(name: str, value: int | None, allow_none: bool = False) -> None:
    """Raise ValueError unless ``value`` is an int >= 1 (or None where ``allow_none``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
