"""Request parameters the HTTP services take as text (pure): whole numbers and dates, checked before any
conversion can fail or any query can overflow, so that bad input is a 400 that names the parameter.

``str.isdigit`` is not enough: it is true of ``²`` and of other digits that ``int`` refuses, and says
nothing of a 20-digit number that no store can hold.
"""

from __future__ import annotations

import re
from datetime import date

from schemas.errors import SpendstreamError

__all__ = ["FIRST_DAY", "LAST_DAY", "ParameterError", "whole_number"]

FIRST_DAY = date(1970, 1, 1)  # no usage is older: events are refused past 24 h back
LAST_DAY = date(2100, 12, 31)  # well inside every time type the stores use
_DIGITS = re.compile(r"[0-9]{1,18}")


class ParameterError(SpendstreamError):
    """A query or path parameter that cannot be used; ``field`` names it."""


def whole_number(text: str, field: str, lo: int, hi: int) -> int:
    """``text`` as an int from ``lo`` to ``hi``, written in ASCII digits only."""
    if not _DIGITS.fullmatch(text) or not lo <= int(text) <= hi:
        raise ParameterError(field, f"a whole number from {lo} to {hi}")
    return int(text)
