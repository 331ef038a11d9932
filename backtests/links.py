"""Where a result leads: the backtest of a sweep's combination or of an optimisation's trial, and
the bot form prefilled with a configuration (a backtest's, a sweep combination's, a trial's).

The bot form belongs to the bots app, which this app never imports: it is reached by its URL,
and its query is the contract (read back by ``bots.forms.bot_prefill``):

- ``strategy`` and ``param_<name>`` (``strategies.forms.params_as_query``);
- ``exchange`` (the form picks the trader's paper account on it), ``symbol``, ``timeframe``;
- ``stop_loss_pct`` / ``take_profit_pct`` in percent (the runs store fractions), ``leverage``
  on a perpetual swap;
- ``replay_start``: the run's first candle (ISO 8601, UTC), for a replay of the same period;
- ``name``: a suggestion.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from backtests.models import ACCOUNT_FIELDS, Backtest, Optimization, PeriodRun, RunStatus, Sweep
from strategies.forms import params_as_query
from strategies.registry import UnknownStrategyError, active

NAME_LENGTH = 100
# A run that failed or was cancelled has no result to show: the link creates a new one.
NO_RESULT = (RunStatus.FAILED, RunStatus.CANCELLED)


def bot_form_url(run: PeriodRun, *, params: Mapping[str, Any] | None = None) -> str:
    """The new-bot page prefilled with ``run``'s configuration (with ``params`` instead of its
    own: a sweep combination's)."""
    values = run.params if params is None else params
    query: dict[str, str] = {
        "strategy": run.strategy_id,
        **params_as_query(values),
        "exchange": run.exchange,
        "symbol": run.symbol,
        "timeframe": run.timeframe,
        "replay_start": run.start.isoformat(),
        "name": _bot_name(run, values)[:NAME_LENGTH],
    }
    for level in ("stop_loss", "take_profit"):
        fraction = getattr(run, level)
        if fraction is not None:
            query[f"{level}_pct"] = _percent(fraction)
    if run.is_perp:
        query["leverage"] = str(run.leverage)
    return f"{reverse('bots:bot-create')}?{urlencode(query)}"


def _percent(fraction: Decimal) -> str:
    return format((Decimal(str(fraction)) * 100).normalize(), "f")


def _bot_name(run: PeriodRun, params: Mapping[str, Any]) -> str:
    shown = " ".join(f"{name}={value}" for name, value in params.items() if name != "allow_short")
    return f"{run.strategy_id} {run.symbol} {run.timeframe} {shown}".strip()


def complete_params(strategy_key: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the strategy's defaults for those left out (an optimisation's trial keeps
    only its fixed and searched ones; a backtest stores them all); as they are when the strategy
    is no longer registered."""
    try:
        declared = active().get(strategy_key).params
    except UnknownStrategyError:
        return dict(params)
    return {**{param.name: param.default for param in declared}, **params}


def params_key(params: Mapping[str, Any]) -> str:
    """Parameters as a comparable key (the order of the keys does not matter)."""
    return json.dumps(dict(params), sort_keys=True)


def sweep_backtests(*, sweep: Sweep) -> dict[str, Backtest]:
    """The owner's backtests of the sweep's configuration over its period, by their parameters
    (:func:`params_key`), the newest of each; failed and cancelled ones left out."""
    return period_backtests(run=sweep)


def period_backtests(*, run: Sweep | Optimization) -> dict[str, Backtest]:
    """The owner's backtests of ``run``'s configuration (a sweep's, an optimisation's) over its
    period, by their parameters (:func:`params_key`), the newest of each; failed and cancelled
    ones left out."""
    same = {field: getattr(run, field) for field in ACCOUNT_FIELDS}
    backtests = (
        Backtest.objects.filter(
            user_id=run.user_id,
            strategy_id=run.strategy_id,
            exchange=run.exchange,
            symbol=run.symbol,
            timeframe=run.timeframe,
            start=run.start,
            end=run.end,
            **same,
        )
        .exclude(status__in=NO_RESULT)
        .defer("equity")
        .order_by("created_at", "id")
    )
    return {params_key(backtest.params): backtest for backtest in backtests}
