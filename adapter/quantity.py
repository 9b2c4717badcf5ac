"""Kubernetes ``resource.Quantity`` strings: canonical formatting and parsing back.

The HPA reads ``value.MilliValue()``, which is ``ceil(q * 1000)``. We round to
milli-units the same way before formatting, so what we emit parses back to the
exact milli-value the HPA will use. Floats are taken at their shortest decimal
``repr`` (0.1 means 0.1, not 0.1000000000000000055).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
# Suffixes used when emitting: the largest one whose exponent divides the value exactly.
_EMIT = (("E", 18), ("P", 15), ("T", 12), ("G", 9), ("M", 6), ("k", 3))
_QUANTITY_RE = re.compile(
    r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>(?:[eE][+-]?\d+)|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)\Z"
)


class QuantityError(ValueError):
    """The value cannot be a Quantity (NaN, infinite) or the string is not one."""


def milli_units(value: float) -> int:
    """``ceil(value * 1000)`` on the shortest decimal form of ``value``: what MilliValue() reads."""
    if math.isnan(value) or math.isinf(value):
        raise QuantityError(f"{value!r} has no Quantity form")
    return math.ceil(Decimal(repr(float(value))) * 1000)


def format_quantity(value: float) -> str:
    """Canonical Quantity string: ``750m``, ``5``, ``12k``, ``1500m``, ``0``."""
    return format_milli(milli_units(value))


def format_milli(milli: int) -> str:
    if milli == 0:
        return "0"
    if milli % 1000:
        return f"{milli}m"
    whole = milli // 1000
    for suffix, exponent in _EMIT:
        scale = 10**exponent
        if whole % scale == 0:
            return f"{whole // scale}{suffix}"
    return str(whole)


def parse_milli(text: str) -> int:
    """Milli-units of a Quantity string read with Kubernetes' rules (``MilliValue``: round up)."""
    match = _QUANTITY_RE.match(text.strip())
    if match is None:
        raise QuantityError(f"{text!r} is not a Quantity")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:
        raise QuantityError(f"{text!r} is not a Quantity") from exc
    suffix = match["suffix"]
    if suffix in _BINARY_SUFFIXES:
        scaled = number * (2 ** _BINARY_SUFFIXES[suffix])
    elif suffix[:1] in ("e", "E") and len(suffix) > 1:
        scaled = number.scaleb(int(suffix[1:]))
    else:
        scaled = number.scaleb(_DECIMAL_SUFFIXES[suffix])
    milli: int = math.ceil(scaled * 1000)
    return milli
