"""The run specification: what every kind of run simulates, and how its account trades.

A backtest, a sweep and a schedule share one :class:`RunSpec`; what varies per kind (a period,
a sweep's grid and ranking, a schedule's name and timing) stays outside it. Pure Python: the
checks that need the database (the strategy, its parameters, the market) are
``backtests.services.config.run_spec_check``; the bounds of each number are those of the API's
``RunSpecInput``, which the pages' forms and the admin reuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from types import EllipsisType
from typing import Any

# ``...`` for stop_loss / take_profit means "not given": the strategy's default applies.
Level = Decimal | None | EllipsisType


@dataclass(frozen=True)
class RunSpec:
    """One strategy configuration and simulated account (a ``RunConfig`` row's fields).

    Units: ``initial_cash`` in the quote currency; ``fee_rate``, ``position_size``,
    ``stop_loss`` and ``take_profit`` are fractions (``0.02`` = 2 %), ``slippage_bps`` basis
    points. ``stop_loss`` / ``take_profit``: None = none, ``...`` = the strategy's default.
    ``params`` may be partial: missing parameters take their defaults. ``leverage`` and
    ``margin_mode`` are for a perpetual-swap market; a spot market takes only their defaults.
    """

    strategy: str
    exchange: str
    symbol: str
    timeframe: str
    initial_cash: Decimal
    fee_rate: Decimal
    params: Mapping[str, Any] = field(default_factory=dict)
    slippage_bps: Decimal = Decimal(0)
    position_size: Decimal = Decimal(1)
    stop_loss: Level = ...
    take_profit: Level = ...
    leverage: int = 1
    margin_mode: str = "isolated"


SPEC_FIELDS = frozenset(spec_field.name for spec_field in fields(RunSpec))


def split_spec(values: Mapping[str, Any]) -> tuple[RunSpec, dict[str, Any]]:
    """Flat fields (a request's, a form's) as their :class:`RunSpec` and the rest (the period,
    a grid, a schedule's timing...). ``params`` given as None counts as none given."""
    given = {name: value for name, value in values.items() if name in SPEC_FIELDS}
    if given.get("params") is None:
        given.pop("params", None)
    rest = {name: value for name, value in values.items() if name not in SPEC_FIELDS}
    return RunSpec(**given), rest
