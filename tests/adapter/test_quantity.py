from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.quantity import QuantityError, format_quantity, parse_milli


@pytest.mark.parametrize(("value", "expected"), [
    (0.0, "0"), (0.75, "750m"), (1.5, "1500m"), (5.0, "5"), (3000.0, "3k"), (12000.0, "12k"),
    (1.08, "1080m"), (0.1, "100m"), (0.0004, "1m"), (1500.0, "1500"), (2.5e6, "2500k"), (7e9, "7G"),
    (-0.75, "-750m"), (-2000.0, "-2k"), (1e-12, "1m"), (123456.789, "123456789m"),
])
def test_canonical_strings(value: float, expected: str) -> None:
    assert format_quantity(value) == expected


@pytest.mark.parametrize(("text", "milli"), [
    ("750m", 750), ("5", 5000), ("12k", 12_000_000), ("1Ki", 1_024_000), ("0.75", 750), ("1.08", 1080),
    ("1e3", 1_000_000), ("2E", 2 * 10**21), ("100u", 1), ("1n", 1), ("-1500m", -1500), ("+3", 3000), (".5", 500),
])
def test_parse_with_kubernetes_rules(text: str, milli: int) -> None:
    assert parse_milli(text) == milli


@pytest.mark.parametrize("text", ["", "m", "1.2.3", "1 k", "1kk", "abc", "1Z"])
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_milli(text)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_has_no_quantity(value: float) -> None:
    with pytest.raises(QuantityError):
        format_quantity(value)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_round_trip_is_ceil_milli(value: float) -> None:
    text = format_quantity(value)
    assert parse_milli(text) == math.ceil(Decimal(repr(value)) * 1000)
    # Canonical: no fraction digits, and an integer mantissa never ends in three zeros.
    assert "." not in text
    mantissa = text.rstrip("mkMGTPE")
    assert mantissa == "0" or not mantissa.endswith("000")
