"""Argument types of the packer's command lines. The parser itself is the project's one,
:class:`inpaint.core.cli.OneLineParser` (one-line errors that name the closest option), imported
from there by every command."""

from __future__ import annotations

import argparse

__all__ = ["age_range", "non_negative_int", "positive_int"]


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def age_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AGE-AGE such as 18-60, got {text!r}") from None
    if not 0 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 0 <= low <= high, got {text!r}")
    return lo, hi
