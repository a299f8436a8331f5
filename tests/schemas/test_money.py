from decimal import Decimal

import pytest

from schemas.money import MoneyError, format_usd, nanos, parse_usd, round_nanos, to_usd


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", 12_500_000_000),
        ("$1,000", 1_000_000_000_000),
        ("0.000000001", 1),
        ("-$2.5", -2_500_000_000),
        ("1_000.000000007", 1_000_000_000_007),
        (Decimal("0.0000025"), 2_500),
    ],
)
def test_parse_usd(text: str | Decimal, expected: int) -> None:
    assert parse_usd(text) == expected


@pytest.mark.parametrize("bad", [1.5, "abc", "1e400000000000", "NaN", "0.0000000001", "Infinity", None, 3])
def test_parse_usd_refuses(bad: object) -> None:
    with pytest.raises(MoneyError):
        parse_usd(bad)  # type: ignore[arg-type]


def test_floats_are_refused_with_a_clear_message() -> None:
    with pytest.raises(MoneyError, match="floats are refused"):
        parse_usd(0.1)  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="must be an int"):
        nanos(1.0)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        nanos(True)


def test_round_nanos_is_half_even() -> None:
    assert round_nanos(Decimal("0.0000000005")) == 0
    assert round_nanos(Decimal("0.0000000015")) == 2
    assert round_nanos(Decimal("0.0000000025")) == 2
    assert round_nanos(Decimal("0.00000000250001")) == 3
    assert round_nanos(Decimal("-0.0000000015")) == -2


def test_format_and_back() -> None:
    assert format_usd(12_345_678_901) == "$12.35"
    assert format_usd(12_345_678_901, places=9) == "$12.345678901"
    assert format_usd(-5_000_000_000) == "-$5.00"
    assert format_usd(1_234_567_000_000_000, places=0) == "$1,234,567"
    assert to_usd(1) == Decimal("0.000000001")
    assert parse_usd(format_usd(987_654_321_123, places=9).replace("$", "")) == 987_654_321_123
    with pytest.raises(MoneyError):
        format_usd(1, places=10)


@pytest.mark.parametrize(
    ("nanos_", "text"),
    [
        (4_820_000, "$0.00482"),  # a cost per request: not "$0.00"
        (4_824_999, "$0.00482"),
        (123, "$0.000000123"),
        (24_790_000_000, "$24.79"),
        (1_234_567_890_123, "$1,234.57"),
        (0, "$0.00"),
        (-4_820_000, "-$0.00482"),
    ],
)
def test_a_unit_cost_keeps_three_significant_figures(nanos_: int, text: str) -> None:
    from schemas.money import format_unit_usd

    assert format_unit_usd(nanos_) == text
