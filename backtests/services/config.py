"""Checks shared by backtests, sweeps and schedules: strategy, parameters, market, period, quota.

Each raises :class:`~tradingbot.errors.AppError` with a stable code, so the API answers 400 (or
429 for the quota) with the envelope and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from backtests.models import (
    ACTIVE_STATUSES,
    Backtest,
    MarginMode,
    Optimization,
    Sweep,
    WalkForward,
    epoch_ms,
)
from backtests.spec import Level, RunSpec
from markets import selectors as market_selectors
from strategies.base import Strategy
from strategies.services import usable_strategy, validated_params
from tradingbot.errors import AppError

# The parameter by which a strategy goes short (strategies.registry checks it is a bool).
SHORT_PARAM = "allow_short"


@dataclass(frozen=True)
class CheckedSpec:
    """A :class:`RunSpec` that passed :func:`run_spec_check`."""

    strategy: type[Strategy]
    fields: dict[str, Any]  # those of a RunConfig row, ready to store


def run_spec_check(*, spec: RunSpec, partial_params: bool = False) -> CheckedSpec:
    """Check ``spec``: a strategy that is usable, its parameters, a market the exchange lists.

    The stored parameters are the validated ones, complete with their defaults; with
    ``partial_params`` (a sweep's fixed parameters, checked with its grid) they are kept as
    given. A level left out (``...``) takes the strategy's default. Raises AppError
    (``unknown_strategy``, ``strategy_disabled``, ``not_backtestable``, ``invalid_params``,
    ``unknown_symbol``, and those of :func:`check_market_terms`).
    """
    strategy = usable_strategy(spec.strategy)
    if not strategy.backtestable:
        raise AppError(
            "not_backtestable",
            f"{strategy.name} trades only on the signals a bot receives: a backtest of it "
            "would make no trades.",
            400,
        )
    params = dict(spec.params) if partial_params else validated_params(strategy, spec.params)
    market_selectors.check_symbol(exchange=spec.exchange, symbol=spec.symbol)
    check_market_terms(spec=spec, shorts=[params.get(SHORT_PARAM)])
    fields = {
        "strategy_id": strategy.key,
        "params": params,
        "exchange": spec.exchange,
        "symbol": spec.symbol,
        "timeframe": spec.timeframe,
        "initial_cash": spec.initial_cash,
        "fee_rate": spec.fee_rate,
        "slippage_bps": spec.slippage_bps,
        "position_size": spec.position_size,
        "stop_loss": _level(spec.stop_loss, strategy.stop_loss),
        "take_profit": _level(spec.take_profit, strategy.take_profit),
        "leverage": spec.leverage,
        "margin_mode": spec.margin_mode,
    }
    return CheckedSpec(strategy=strategy, fields=fields)


def check_market_terms(*, spec: RunSpec, shorts: Iterable[Any]) -> None:
    """A perp market takes a leverage up to its maximum, isolated margin only; a spot market
    takes neither a leverage above 1 nor a short (``shorts``: the values the strategy's
    ``allow_short`` may take, a sweep's grid included). Raises AppError (``spot_market``,
    ``invalid_leverage``, ``unsupported_margin_mode``) naming the field."""
    if spec.margin_mode != MarginMode.ISOLATED:
        raise AppError(
            "unsupported_margin_mode",
            f"Margin mode {spec.margin_mode!r} is not supported yet: positions are margined "
            "isolated, each on its own.",
            details={"margin_mode": ["only isolated is supported"]},
        )
    market = market_selectors.perp_market(exchange=spec.exchange, symbol=spec.symbol)
    if market is None:
        _check_spot_terms(spec, shorts)
    else:
        _check_leverage(spec, market)


def _check_leverage(spec: RunSpec, market: market_selectors.PerpMarket) -> None:
    """At most the market's maximum, and the maximum of the tier of the first position's
    notional (Bitget lowers the leverage allowed as a position grows)."""
    notional = spec.initial_cash * spec.position_size * spec.leverage
    tier = market.tier(notional)
    most = min(market.max_leverage, tier.max_leverage)
    if spec.leverage <= most:
        return
    quote = spec.symbol.partition("/")[2].partition(":")[0]
    where = spec.symbol
    if most < market.max_leverage:
        where = f"a {spec.symbol} position of {notional.normalize():f} {quote}"
    raise AppError(
        "invalid_leverage",
        f"{where} allows a leverage of at most {most}, not {spec.leverage}.",
        details={"leverage": [f"at most {most} on {spec.symbol}"]},
    )


def _check_spot_terms(spec: RunSpec, shorts: Iterable[Any]) -> None:
    perp_symbol = f"{spec.symbol}:{spec.symbol.partition('/')[2]}"
    hint = f"Trade its perpetual swap ({perp_symbol}) for that."
    if spec.leverage != 1:
        raise AppError(
            "spot_market",
            f"{spec.symbol} is a spot market: it has no leverage. {hint}",
            details={"leverage": ["must be 1 on a spot market"]},
        )
    if any(shorts):
        raise AppError(
            "spot_market",
            f"{spec.symbol} is a spot market: it cannot be shorted. {hint}",
            details={f"params.{SHORT_PARAM}": ["must be false on a spot market"]},
        )


def _level(given: Level, default: float | None) -> Decimal | None:
    if given is not ...:
        return given
    return None if default is None else Decimal(str(default))


def checked_period(*, spec: RunSpec, start: datetime, end: datetime) -> int:
    """The number of stored candles of the spec's market opened in [start, end); refuses an
    empty or huge period."""
    exchange, symbol, timeframe = spec.exchange, spec.symbol, spec.timeframe
    if start >= end:
        raise AppError(
            "invalid_period", "start must be before end.", details={"end": ["must be after start"]}
        )
    count = market_selectors.candles_in_period(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        start_ms=epoch_ms(start),
        end_ms=epoch_ms(end),
    ).count()
    if count == 0:
        raise AppError(
            "empty_period",
            f"No {symbol} {timeframe} candles of {exchange} are stored between "
            f"{start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC. "
            "Pick another period or import candles first.",
            details={"start": ["no candles in the period"]},
        )
    if count > settings.BACKTEST_MAX_CANDLES:
        raise AppError(
            "period_too_long",
            f"The period holds {count} candles; at most {settings.BACKTEST_MAX_CANDLES} are "
            "allowed. Shorten it or use a longer timeframe.",
            details={"start": [f"{count} candles > {settings.BACKTEST_MAX_CANDLES}"]},
        )
    return count


@contextmanager
def one_create_at_a_time(user: User) -> Iterator[None]:
    """A transaction in which the user's row is locked, then the quota checked: two runs the
    user creates at once are counted one after the other, never both under the limit."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        check_quota(user)
        yield


def check_quota(user: User) -> None:
    """At most ``BACKTEST_MAX_ACTIVE_PER_USER`` queued or running backtests, sweeps,
    optimisations and walk-forwards per user, so one trader cannot fill every worker. A
    walk-forward counts once: the optimisations of its windows are not counted."""
    limit = settings.BACKTEST_MAX_ACTIVE_PER_USER
    active = {"user": user, "status__in": ACTIVE_STATUSES}
    active_count = (
        Backtest.objects.filter(**active).count()
        + Sweep.objects.filter(**active).count()
        + Optimization.objects.filter(**active, walk_forward_window=None).count()
        + WalkForward.objects.filter(**active).count()
    )
    if active_count >= limit:
        raise AppError(
            "too_many_active_runs",
            f"You already have {active_count} backtests, sweeps, optimisations or walk-forwards "
            f"queued or running (the limit is {limit}). Wait for one to finish or cancel one.",
            status=429,
        )
