"""Numbers from outside (ccxt answers, JSON bodies, configuration) as Decimals."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def finite_decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal; None for None, a bool, text that is not a number, NaN and
    the infinities. Floats go through ``str``, so 0.1 is Decimal("0.1"), not its binary value."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
