"""Recognise a schedule that is literally zero, so that a transform can return an ODE."""

from __future__ import annotations

from typing import Any


def is_literal_zero(value: Any) -> bool:
    """True for a Python or NumPy number equal to 0 (never for a callable or a traced array)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0
