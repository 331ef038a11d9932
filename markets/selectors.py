"""Reads of the markets app: a trader's exchange accounts (scoped to their owner: another
user's account is a 404, indistinguishable from none), candles for charts and engines, and how a
market's numbers are shown."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from django.core.cache import cache
from django.db import connections
from django.db.models import FloatField, Max, Min, QuerySet
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404

from accounts.models import User
from markets import perp
from markets.candle_csv import Steps
from markets.exchanges import ccxt_swap
from markets.exchanges.markets import get_catalog
from markets.models import Candle, ExchangeAccount, FundingRate, MarkCandle, PaperBalance
from markets.timeframes import MARK_TIMEFRAME_MS, timeframe_ms
from tradingbot.errors import AppError


def exchange_account_list(*, user: User) -> QuerySet[ExchangeAccount]:
    return ExchangeAccount.objects.filter(user=user).order_by("label")


def exchange_account_get(*, user: User, pk: int) -> ExchangeAccount:
    """The user's account, or 404: another user's account is indistinguishable from none."""
    return get_object_or_404(ExchangeAccount, user=user, pk=pk)


# --- balances, as the accounts page shows them ------------------------------------------------

BALANCE_CACHE_SECONDS = 7 * 24 * 3600  # a live account's last fetch, shown with its time


def balance_cache_key(account_id: int) -> str:
    return f"exchange-account-balance:{account_id}"


class BalanceRow(NamedTuple):
    currency: str
    free: Decimal
    used: Decimal  # reserved by open orders (a perp's margin too)
    total: Decimal

    @property
    def used_text(self) -> str:
        return f"{self.used.normalize():f}"

    @property
    def total_text(self) -> str:
        return f"{self.total.normalize():f}"


class AccountBalances(NamedTuple):
    """What the page shows of an account's balances without asking the exchange: a paper
    account's ledger as it is now (``as_of`` None), a live account's last fetch (``as_of`` its
    time; no rows and no time before the first)."""

    rows: list[BalanceRow]
    as_of: datetime | None


def exchange_account_balances_known(
    *, accounts: list[ExchangeAccount]
) -> dict[int, AccountBalances]:
    """Each account's balances by id: paper ones from the ledger (one query for them all), live
    ones from the cache of their last fetch (``markets.services.exchange_account_balances``)."""
    paper_ids = [a.pk for a in accounts if not a.is_live]
    ledger: dict[int, list[BalanceRow]] = {pk: [] for pk in paper_ids}
    for row in PaperBalance.objects.filter(account_id__in=paper_ids).order_by("currency"):
        if row.free or row.used:
            ledger[row.account_id].append(
                BalanceRow(row.currency, row.free, row.used, row.free + row.used)
            )
    known = {pk: AccountBalances(rows, None) for pk, rows in ledger.items()}
    for account in accounts:
        if account.is_live:
            known[account.pk] = _cached_balances(account.pk)
    return known


def _cached_balances(account_id: int) -> AccountBalances:
    cached = cache.get(balance_cache_key(account_id))
    if not isinstance(cached, dict):
        return AccountBalances([], None)
    rows = [
        BalanceRow(currency, Decimal(parts["free"]), Decimal(parts["used"]),
                   Decimal(parts["total"]))
        for currency, parts in sorted(cached.get("balances", {}).items())
    ]  # fmt: skip
    return AccountBalances(rows, datetime.fromisoformat(cached["fetched_at"]))


# --- candles ---------------------------------------------------------------------------------

PRICE_FIELDS = ("open", "high", "low", "close", "volume")
# Charts want floats: let the database cast, instead of building 1,000 Decimals per request.
AS_FLOATS = {f"{name}_f": Cast(name, FloatField()) for name in PRICE_FIELDS}


def candles_recent(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    limit: int = 200,
    before: int | None = None,
    now_ms: int | None = None,
) -> list[list[float]]:
    """The most recent ``limit`` closed candles (opened before ``before`` if given), ascending,
    as ``[open_time_ms, open, high, low, close, volume]`` rows for charts.

    A candle is closed when its open time plus the timeframe has passed.
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    newest_open = now_ms - timeframe_ms(timeframe)
    if before is not None:
        newest_open = min(newest_open, before - 1)
    rows = (
        Candle.objects.filter(
            exchange=exchange, symbol=symbol, timeframe=timeframe, open_time__lte=newest_open
        )
        .order_by("-open_time")
        .annotate(**AS_FLOATS)
        .values_list("open_time", *AS_FLOATS)[:limit]
    )
    return [list(row) for row in reversed(rows)]


FRAME_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")


def candles_in_period(
    *, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> QuerySet[Candle]:
    """The stored candles opened in [start_ms, end_ms), as a queryset (for counting)."""
    return Candle.objects.filter(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        open_time__gte=start_ms,
        open_time__lt=end_ms,
    )


def candles_frame(
    *, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> pd.DataFrame:
    """The candles opened in [start_ms, end_ms) as a float DataFrame ascending by open_time,
    with the columns strategies and the backtest engine take (``FRAME_COLUMNS``)."""
    rows = (
        candles_in_period(
            exchange=exchange, symbol=symbol, timeframe=timeframe, start_ms=start_ms, end_ms=end_ms
        )
        .order_by("open_time")
        .annotate(**AS_FLOATS)
        .values_list("open_time", *AS_FLOATS)
    )
    values = _number_rows(rows).reshape(-1, len(FRAME_COLUMNS))
    frame = pd.DataFrame(values, columns=list(FRAME_COLUMNS))
    frame["open_time"] = values[:, 0].astype(np.int64)
    return frame


def _number_rows(rows: QuerySet[Any]) -> np.ndarray:
    """A ``values_list`` queryset of numbers as a flat float array, its rows streamed from the
    database cursor into numpy: the ORM's conversion of each row, then a list of them, cost more
    than the query itself on a long period (200,000 candles on SQLite: 0.3 s instead of 0.6 s)."""
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        return np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.float64)


def check_symbol(*, exchange: str, symbol: str) -> None:
    """Raise ``unknown_symbol`` (AppError, 400) unless the exchange lists the market or it is a
    data-only market (:func:`is_data_only`)."""
    try:
        get_catalog(exchange).market(symbol)
    except AppError:
        if not is_data_only(exchange=exchange, symbol=symbol):
            raise


def is_data_only(*, exchange: str, symbol: str) -> bool:
    """A market the exchange's catalog does not list but whose candles were imported from a
    file (``import_candles --file``): it can be charted and backtested, never traded by a bot
    (there are no exchange rules to trade it by)."""
    try:
        if symbol in get_catalog(exchange).markets:
            return False
    except AppError:
        return False
    return Candle.objects.filter(exchange=exchange, symbol=symbol).exists()


# --- how a market is shown -----------------------------------------------------------------------


class MarketPlaces(NamedTuple):
    """Decimal places a market's prices and amounts are shown with (its precision steps)."""

    price: int
    qty: int


def market_places(*, exchange: str, symbol: str) -> MarketPlaces:
    """From the exchange's market rules; for a market the catalogue does not list (data only),
    the places its latest stored candle's prices use (at least 2), and 8 for amounts."""
    try:
        rules = get_catalog(exchange).rules(symbol)
    except AppError:
        return MarketPlaces(_stored_price_places(exchange, symbol), 8)
    return MarketPlaces(_places(rules.price_step, 2), _places(rules.amount_step, 8))


def _stored_price_places(exchange: str, symbol: str) -> int:
    latest = (
        Candle.objects.filter(exchange=exchange, symbol=symbol)
        .order_by("-open_time")
        .values_list("open", "high", "low", "close")
        .first()
    )
    if latest is None:
        return 2
    return max(2, *(_places(price, 2) for price in latest))


def market_steps(*, exchange: str, symbol: str) -> Steps:
    """The market's price tick and amount step from the catalogue, for rounding float noise in
    imported candles; none (12 decimal places) for a market the catalogue does not list."""
    try:
        rules = get_catalog(exchange).rules(symbol)
    except AppError:
        return Steps()
    return Steps(price=rules.price_step, amount=rules.amount_step)


def _places(step: Decimal | None, fallback: int) -> int:
    if step is None or step <= 0:
        return fallback
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else fallback


# --- perpetual swaps -------------------------------------------------------------------------


class PerpMarket(NamedTuple):
    """What a backtest or a bot needs of a perp market's rules: its highest leverage and its
    leverage / maintenance-margin tiers (the catalog's, else ``perp.DEFAULT_TIERS``)."""

    max_leverage: int
    tiers: tuple[perp.MaintenanceTier, ...]

    def tier(self, notional: Decimal) -> perp.MaintenanceTier:
        return perp.tier_for(notional, self.tiers)


def perp_market(*, exchange: str, symbol: str) -> PerpMarket | None:
    """The perp rules of a swap market the catalog lists, None for a spot market (or one the
    catalog does not list: ``check_symbol`` refuses that one)."""
    try:
        market = get_catalog(exchange).market(symbol)
    except AppError:
        return None
    if not market.get("swap"):
        return None
    most = ((market.get("limits") or {}).get("leverage") or {}).get("max")
    return PerpMarket(
        max_leverage=int(most) if most else perp.MAX_LEVERAGE,
        tiers=ccxt_swap.market_tiers(market),
    )


def mark_candles_frame(
    *, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> pd.DataFrame:
    """The stored mark-price candles opened in [start_ms, end_ms), as ``candles_frame`` gives
    trade candles (``volume`` left out: mark prices are not traded)."""
    columns = ("open", "high", "low", "close")
    rows = (
        MarkCandle.objects.filter(
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            open_time__gte=start_ms,
            open_time__lt=end_ms,
        )
        .order_by("open_time")
        .values_list("open_time", *columns)
    )
    values = np.array(list(rows), dtype=np.float64).reshape(-1, 1 + len(columns))
    frame = pd.DataFrame(values, columns=["open_time", *columns])
    frame["open_time"] = values[:, 0].astype(np.int64)
    return frame


def funding_frame(
    *, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> pd.DataFrame:
    """The funding rates of the funding times in [start_ms, end_ms): ``time``, ``rate`` and the
    ``mark_price`` at that time: the open of the stored mark candle opened then, of ``timeframe``
    (the run's) first, else of the finest timeframe stored (the paper exchange's rule); NaN when
    none is stored, and the engine falls back to the trade price."""
    rates = list(
        FundingRate.objects.filter(
            exchange=exchange, symbol=symbol, funding_time__gte=start_ms, funding_time__lt=end_ms
        )
        .order_by("funding_time")
        .values_list("funding_time", "rate")
    )
    times = [time for time, _ in rates]
    marks: dict[int, tuple[int, Decimal]] = {}
    mark_rows = MarkCandle.objects.filter(
        exchange=exchange, symbol=symbol, open_time__in=times
    ).values_list("open_time", "timeframe", "open")
    for open_time, mark_timeframe, price in mark_rows:
        width = 0 if mark_timeframe == timeframe else MARK_TIMEFRAME_MS.get(mark_timeframe, 2**62)
        if open_time not in marks or width < marks[open_time][0]:
            marks[open_time] = (width, price)
    return pd.DataFrame(
        {
            "time": np.array(times, dtype=np.int64),
            "rate": np.array([float(rate) for _, rate in rates], dtype=np.float64),
            "mark_price": np.array(
                [float(marks[t][1]) if t in marks else np.nan for t in times], dtype=np.float64
            ),
        }
    )


def stored_candle_ranges() -> list[dict[str, Any]]:
    """Every market with stored candles: ``exchange``, ``symbol``, ``timeframe`` and the
    ``first`` and ``last`` candles' open times (epoch ms), for the forms' hints and defaults."""
    markets = (
        Candle.objects.values("exchange", "symbol", "timeframe")
        .annotate(first=Min("open_time"), last=Max("open_time"))
        .order_by("exchange", "symbol", "timeframe")
    )
    return [dict(market) for market in markets]
