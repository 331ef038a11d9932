"""Perpetual swaps through ccxt: what the adapter reads out of ccxt's swap answers.

Pure functions over ccxt's parsed results (and Bitget's raw account settings in ``info``), so
``CcxtExchange`` stays a thin layer of calls.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from markets import perp
from markets.exchanges.base import Position
from markets.exchanges.errors import ExchangeError, InvalidLeverageError, InvalidOrderError

MARGIN_MODES = ("isolated", "cross")
# Bitget's refusal of a leverage (v2 API error list: 40797 "Exceeded the maximum settable
# leverage"); ccxt maps it to no specific class.
LEVERAGE_REFUSALS = frozenset({"40797"})


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def position_from_ccxt(row: dict[str, Any]) -> Position:
    """Our ``Position`` from ccxt's unified position; a 0 liquidation price becomes None."""
    side = row.get("side")
    if side not in ("long", "short"):
        raise ExchangeError(f"position of {row.get('symbol')} has no side ({side!r})")
    liquidation = decimal_or_none(row.get("liquidationPrice"))
    margin = decimal_or_none(row.get("initialMargin"))
    return Position(
        symbol=str(row["symbol"]),
        side=side,
        contracts=decimal_or_none(row.get("contracts")) or Decimal(0),
        entry_price=decimal_or_none(row.get("entryPrice")),
        mark_price=decimal_or_none(row.get("markPrice")),
        leverage=decimal_or_none(row.get("leverage")),
        margin_mode=row.get("marginMode"),
        unrealized_pnl=decimal_or_none(row.get("unrealizedPnl")),
        liquidation_price=liquidation if liquidation is not None and liquidation > 0 else None,
        margin=margin if margin is not None else decimal_or_none(row.get("collateral")),
        # Bitget's unified account reports the position's funding total (its fees are negative
        # when paid, as ours); the classic account's answer has none.
        funding=decimal_or_none((row.get("info") or {}).get("totalFunding")),
    )


# Where a catalog market keeps its tiers: ccxt's ``fetchMarketLeverageTiers`` rows, stored by
# ``refresh_markets`` (and in the shipped catalog where a recording has them).
TIERS_KEY = "leverageTiers"


def tiers_from_ccxt(rows: list[dict[str, Any]]) -> tuple[perp.MaintenanceTier, ...]:
    """ccxt's leverage tiers (``minNotional``, ``maxNotional``, ``maintenanceMarginRate``,
    ``maxLeverage``) as ``perp.MaintenanceTier``s, smallest first; the last one unbounded.
    A row that lacks a number is an ``ExchangeError``: a wrong tier would misplace every
    liquidation price."""
    tiers = []
    for row in sorted(rows, key=lambda row: float(row.get("minNotional") or 0)):
        rate = decimal_or_none(row.get("maintenanceMarginRate"))
        most = decimal_or_none(row.get("maxLeverage"))
        if rate is None or most is None or not 0 <= rate < 1 or most < 1:
            raise ExchangeError(f"leverage tier without a usable rate or leverage: {row!r}")
        tiers.append(
            perp.MaintenanceTier(
                min_notional=decimal_or_none(row.get("minNotional")) or Decimal(0),
                max_notional=decimal_or_none(row.get("maxNotional")),
                maintenance_margin_rate=rate,
                max_leverage=int(most),
            )
        )
    if tiers:
        tiers[-1] = replace(tiers[-1], max_notional=None)
    return tuple(tiers)


def market_tiers(market: dict[str, Any]) -> tuple[perp.MaintenanceTier, ...]:
    """A catalog market's tiers when it has them, else ``perp.DEFAULT_TIERS``."""
    rows = market.get(TIERS_KEY)
    return tiers_from_ccxt(rows) if rows else perp.DEFAULT_TIERS


def is_one_way(settings: dict[str, Any]) -> bool:
    """Bitget's account settings (``/api/v2/mix/account/account``) say one-way mode."""
    return settings.get("posMode") == "one_way_mode"


def margin_mode_of(settings: dict[str, Any]) -> str | None:
    mode = settings.get("marginMode")
    return "cross" if mode == "crossed" else mode


def leverage_of(settings: dict[str, Any]) -> set[Decimal | None]:
    """The leverage(s) in force: cross has one; isolated one per side (long and short)."""
    keys: tuple[str, ...] = ("crossedMarginLeverage",)
    if margin_mode_of(settings) == "isolated":
        keys = ("isolatedLongLever", "isolatedShortLever")
    return {decimal_or_none(settings.get(key)) for key in keys}


def check_margin_mode(margin_mode: str) -> None:
    if margin_mode not in MARGIN_MODES:
        raise InvalidOrderError(f"margin mode must be one of {', '.join(MARGIN_MODES)}")


def check_swap(market: dict[str, Any]) -> None:
    if not market.get("swap"):
        raise InvalidOrderError(f"{market.get('symbol')} is not a perpetual swap market")


def check_leverage(market: dict[str, Any], leverage: int) -> None:
    """A whole leverage from 1 to the market's maximum: the pure rule of
    ``markets.perp.check_leverage``, raised as the adapter's ``InvalidLeverageError``."""
    maximum = decimal_or_none(((market.get("limits") or {}).get("leverage") or {}).get("max"))
    try:
        perp.check_leverage(leverage, int(maximum) if maximum is not None else perp.MAX_LEVERAGE)
    except perp.PerpRuleError as exc:
        raise InvalidLeverageError(f"{market.get('symbol')}: {exc}") from None
