"""A share written as a percentage or a fraction: `2%` or 0.02 (relative gate margins)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _fraction(v: Any) -> Any:
    """`2%` → 0.02; a number is a fraction already (0.02)."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a percentage like 2% or a fraction like 0.02, not '{v}'") from None
    return v


Fraction = Annotated[float, BeforeValidator(_fraction), Field(ge=0)]
"""A share of the baseline's value: `2%` or 0.02."""
