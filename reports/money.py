"""Money as the renderers write it (pure): exact decimal USD from integer nano-USD."""

from __future__ import annotations

__all__ = ["usd_exact", "usd_short"]


def usd_exact(nanos: int) -> str:
    """``1500000001`` -> ``1.500000001``: every nano-USD, no rounding, no float."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(int(nanos)), 10**9)
    return f"{sign}{whole}.{frac:09d}"


def usd_short(nanos: int) -> str:
    """``$1,234.57``: rounded half to even to the cent, for reading (tables carry the exact figure too)."""
    cents, rest = divmod(abs(int(nanos)), 10**7)
    if rest > 5 * 10**6 or (rest == 5 * 10**6 and cents % 2):
        cents += 1
    sign = "-" if nanos < 0 else ""
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"
