"""Checks of settings that name the bad value: one place for every config's validation."""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable


def positive_int(name: str, value) -> int:
    """``value`` as an int, or ``ValueError`` unless it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def one_of(name: str, value, known: Iterable):
    """``value``, or ``ValueError`` unless it is one of ``known``."""
    known = tuple(known)
    if value not in known:
        raise ValueError(f"{name} must be one of {known}, got {value!r}")
    return value


def in_range(name: str, value, low: float, high: float, closed_high: bool = False) -> float:
    """``value``, or ``ValueError`` unless ``low <= value < high`` (``<= high`` if closed)."""
    ok = isinstance(value, numbers.Real) and math.isfinite(value) and low <= value and (
        value <= high if closed_high else value < high)
    if not ok:
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}{']' if closed_high else ')'}, got {value!r}")
    return value


def finite_values(name: str, values, minimum: float = 0.0) -> tuple:
    """``values`` as a tuple, or ``ValueError`` unless non-empty, finite and >= ``minimum``."""
    values = tuple(values)
    if not values or any(not math.isfinite(v) or v < minimum for v in values):
        raise ValueError(f"{name} must be a non-empty list of finite values >= {minimum}, got {values!r}")
    return values
