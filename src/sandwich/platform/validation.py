"""Constrained types every service's request models use, so that bad input is a 422, never a 5xx.

PostgreSQL refuses a NUL byte in `text`, and a lone surrogate (`"\\ud800"` in JSON) cannot be encoded
as UTF-8: either would reach the database and fail there. No field of the contract needs a newline or
any other control character, so `Text` refuses them all (Unicode categories Cc and Cs) with pydantic's
validation error, which platform/errors.py answers as 422 `invalid_field`.

Numbers are numbers: request models declare them with `Field(strict=True)`; a strict float still
takes a JSON integer (`"lat": 55`) but never a string such as "55.7" nor a boolean.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})


def control_character(value: str) -> str | None:
    """The first control character (or lone surrogate) in `value`, or None when it has none."""
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return char
    return None


def no_control_characters(value: str) -> str:
    """Pydantic validator: `value` unchanged, or a ValueError naming the first refused character."""
    char = control_character(value)
    if char is not None:
        raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    return value


Text = Annotated[str, AfterValidator(no_control_characters)]
"""A string without control characters; add length limits with `Field(...)` beside it."""

__all__ = ["Text", "control_character", "no_control_characters"]
