"""Creating runs through the services, as the tests spell them: flat fields.

The create services take a :class:`~backtests.spec.RunSpec` and the fields of their own kind
(a period, a grid, a schedule's timing); :func:`create_with` splits flat fields into the two, so
that a test overrides any of them alike (``stop_loss=None``, ``start=...``, ``grid=...``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from backtests.spec import split_spec
from tests.backtests.conftest import SampleMarket

Run = TypeVar("Run")


def create_with(create: Callable[..., Run], **fields: Any) -> Run:
    """Call ``create`` (``services.backtest_create``, ...) with ``fields``: those of a RunSpec
    go in its ``spec``, the others as they are."""
    spec, rest = split_spec(fields)
    return create(spec=spec, **rest)


def market_fields(market: SampleMarket, *, period: bool = True) -> dict[str, Any]:
    """The sample market and, with ``period``, all of its candles; an account of 10,000 with a
    0.1 % fee."""
    fields: dict[str, Any] = {
        "exchange": market.exchange,
        "symbol": market.symbol,
        "timeframe": market.timeframe,
        "initial_cash": Decimal("10000"),
        "fee_rate": Decimal("0.001"),
    }
    if period:
        fields |= {"start": market.start, "end": market.end}
    return fields
