"""Money as an integer count of nano-USD (1e-9 USD).

Every amount in state, on the wire and in ClickHouse is a plain ``int`` of
nano-USD. Prices are ``Decimal`` per token; a computed cost is rounded once,
half-even, with :func:`round_nanos`. Floats are refused everywhere: a float
cannot hold 0.1 USD exactly, and a billing system that drifts by a rounding
error per event is wrong by thousands of dollars a year at volume.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import NewType

from schemas.errors import SpendstreamError

__all__ = [
    "MAX_NANOS",
    "NANOS_PER_USD",
    "MoneyError",
    "NanoUSD",
    "format_usd",
    "nanos",
    "parse_usd",
    "round_nanos",
    "to_usd",
    "usd_exact",
]

NanoUSD = NewType("NanoUSD", int)
"""An amount of money in nano-USD. Always an ``int``."""

NANOS_PER_USD = 1_000_000_000
MAX_NANOS = 2**63 - 1
"""Redis counters and ClickHouse columns are signed 64-bit: about 9.2 billion USD."""
_NANOS_PER_USD_DECIMAL = Decimal(NANOS_PER_USD)
_ONE = Decimal(1)


class MoneyError(SpendstreamError):
    """An amount that cannot be money: a float, a non-number, a fraction of a nano-USD."""


def nanos(value: int) -> NanoUSD:
    """Wrap an ``int`` count of nano-USD; anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MoneyError("nanos", f"must be an int, got {type(value).__name__}")
    return NanoUSD(value)


def parse_usd(value: str | Decimal) -> NanoUSD:
    """Parse a USD amount written in decimal ("12.50", "$1,000", Decimal("0.000002")).

    The amount must be a whole number of nano-USD; "0.0000000001" is refused
    rather than silently rounded, because a typo in a budget must not become a
    different budget.
    """
    if isinstance(value, float):
        raise MoneyError("usd", "floats are refused for money; write the amount as a string such as '12.50'")
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        if text.startswith("$"):
            text = text[1:]
        elif text.startswith("-$"):
            text = "-" + text[2:]
        try:
            amount = Decimal(text)
        except ArithmeticError:  # InvalidOperation, Overflow
            raise MoneyError("usd", f"not a USD amount: {value!r}") from None
    elif isinstance(value, Decimal):
        amount = value
    else:
        raise MoneyError("usd", f"must be a str or Decimal, got {type(value).__name__}")
    if not amount.is_finite():
        raise MoneyError("usd", f"not a finite USD amount: {value!r}")
    if amount.adjusted() > 9 or abs(amount) > MAX_NANOS // NANOS_PER_USD:
        raise MoneyError("usd", f"{value!r} is beyond the signed 64-bit range of nano-USD")
    scaled = amount * _NANOS_PER_USD_DECIMAL
    if scaled != scaled.to_integral_value():
        raise MoneyError("usd", f"{value!r} is finer than one nano-USD (1e-9 USD)")
    return NanoUSD(int(scaled))


def round_nanos(amount_usd: Decimal) -> NanoUSD:
    """Round an exact USD ``Decimal`` to nano-USD, half to even. The one rounding rule."""
    if isinstance(amount_usd, float):
        raise MoneyError("nanos", "floats are refused for money")
    scaled = (amount_usd * _NANOS_PER_USD_DECIMAL).quantize(_ONE, rounding=ROUND_HALF_EVEN)
    return NanoUSD(int(scaled))


def to_usd(amount: int) -> Decimal:
    """The exact USD ``Decimal`` of an amount of nano-USD."""
    return Decimal(nanos(amount)) / _NANOS_PER_USD_DECIMAL


def format_usd(amount: int, places: int = 2) -> str:
    """Format nano-USD as dollars: ``format_usd(12_345_678_901) == "$12.35"``.

    ``places`` runs from 0 to 9; the display rounds half-even, the stored value never changes.
    """
    if not 0 <= places <= 9:
        raise MoneyError("places", "must be between 0 and 9")
    value = to_usd(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{places}f}"


def usd_exact(amount: int) -> str:
    """``1500000001`` -> ``1.500000001``: every nano-USD, no rounding, no float (a report's exact column)."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(int(amount)), 10**9)
    return f"{sign}{whole}.{frac:09d}"


def format_unit_usd(amount: int, figures: int = 3) -> str:
    """A unit cost (per request, per 1k tokens) with the precision it needs: ``figures`` significant figures
    and at least the cents, ``$0.00482`` rather than ``$0.00``; at most the nano-USD."""
    value = to_usd(amount)
    if value == 0:
        return "$0.00"
    places = min(9, max(2, figures - 1 - value.copy_abs().adjusted()))
    return format_usd(amount, places)
