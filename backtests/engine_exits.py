"""Exits inside a candle for the backtest simulator: stop-loss, take-profit and liquidation, for
whole arrays of trades at once. Pure numpy, no Django; the rules are in ``backtests.engine``'s
docstring (fill model, rule 6, and "Perpetual swaps").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from backtests.engine_perp import liquidation_levels

EXIT_REASONS = ("signal", "stop_loss", "take_profit", "end", "liquidation")
SIGNAL, STOP_LOSS, TAKE_PROFIT, END, LIQUIDATION = range(5)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Levels:
    """What ends a trade inside a candle (from the settings): the stop-loss and take-profit
    fractions, the slippage as a fraction, and for a perp its leverage and maintenance rate."""

    stop_loss: float | None
    take_profit: float | None
    slip: float
    perp: bool
    leverage: float
    maintenance_rate: float

    @property
    def any(self) -> bool:
        return self.perp or self.stop_loss is not None or self.take_profit is not None


@dataclass(frozen=True)
class Market:
    times: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray


@dataclass(frozen=True)
class Plan:
    """Trades as they happen in price terms, before sizing (one entry per trade)."""

    side: FloatArray
    entry_bar: IntArray
    exit_bar: IntArray
    entry_price: FloatArray
    exit_price: FloatArray
    reason: npt.NDArray[np.int8]

    def first(self, count: int) -> Plan:
        return Plan(
            self.side[:count],
            self.entry_bar[:count],
            self.exit_bar[:count],
            self.entry_price[:count],
            self.exit_price[:count],
            self.reason[:count],
        )


def cut_at_levels(
    plan: Plan,
    trigger: Market,
    held: npt.NDArray[np.int8],
    natural_end: IntArray,
    levels: Levels,
) -> None:
    """End, in place, the trades whose stop-loss, take-profit or liquidation price is reached
    (on the ``trigger`` prices) before their signal exit."""
    side, entry_price = plan.side, plan.entry_price
    held_bars = HeldBars.of(trigger, held, natural_end - plan.entry_bar, side)
    never = np.full(side.size, trigger.times.size, dtype=np.int64)
    stop_level = entry_price * (1.0 - side * (levels.stop_loss or 0.0))
    tp_level = entry_price * (1.0 + side * (levels.take_profit or 0.0))
    stop_bar = tp_bar = liq_bar = never
    if levels.stop_loss is not None:
        stop_bar = held_bars.first_touch(stop_level, side, adverse=True, never=never)
    if levels.take_profit is not None:
        tp_bar = held_bars.first_touch(tp_level, side, adverse=False, never=never)
    liq_level = liquidation_levels(side, entry_price, levels.leverage, levels.maintenance_rate)
    if levels.perp:
        liq_bar = held_bars.first_touch(liq_level, side, adverse=True, never=never)
    # Stop and liquidation in one candle: the level nearer the entry, which the price passes
    # first. A long's adverse levels lie below the entry (nearer = higher), a short's above.
    liquidated = (liq_bar < stop_bar) | (
        (liq_bar == stop_bar) & (side * (liq_level - stop_level) > 0)
    )
    adverse_bar = np.where(liquidated, liq_bar, stop_bar)
    adverse = adverse_bar <= tp_bar  # adverse and take-profit in one candle: the adverse one
    hit_bar = np.where(adverse, adverse_bar, tp_bar)
    hit = np.flatnonzero(hit_bar < natural_end)
    if not hit.size:
        return
    plan.exit_price[hit] = _level_fills(
        trigger.open[hit_bar[hit]],
        side[hit],
        np.where(adverse[hit], stop_level[hit], tp_level[hit]),
        adverse[hit],
        levels.slip,
    )
    liquidated_hit = adverse[hit] & liquidated[hit]
    plan.exit_price[hit[liquidated_hit]] = liq_level[hit[liquidated_hit]]  # no slippage
    plan.exit_bar[hit] = hit_bar[hit]
    plan.reason[hit] = np.where(
        adverse[hit], np.where(liquidated[hit], LIQUIDATION, STOP_LOSS), TAKE_PROFIT
    )


def _level_fills(
    opened: FloatArray, side: FloatArray, level: FloatArray, stops: BoolArray, slip: float
) -> FloatArray:
    """Fill prices of stop-loss (``stops``) and take-profit exits at ``level`` in a candle that
    opened at ``opened``.

    An open already beyond the level fills at the open: worse for a stop, better for a
    take-profit. Long take-profits and short stops lie above the price, the others below.
    """
    above = (side > 0) != stops
    raw = np.where(above, np.maximum(level, opened), np.minimum(level, opened))
    return np.where(stops, raw * (1.0 - side * slip), raw)


@dataclass(frozen=True)
class HeldBars:
    """Every candle in which a trade would hold its position, in trade order."""

    bars: IntArray
    lengths: IntArray
    trade: IntArray
    long: npt.NDArray[np.bool_]
    low: FloatArray
    neg_high: FloatArray

    @classmethod
    def of(
        cls, market: Market, held: npt.NDArray[np.int8], lengths: IntArray, side: FloatArray
    ) -> HeldBars:
        bars = np.flatnonzero(held)
        trade = np.repeat(np.arange(lengths.size), lengths)
        long = np.repeat(side > 0, lengths)
        return cls(bars, lengths, trade, long, market.low[bars], -market.high[bars])

    def first_touch(
        self, level: FloatArray, side: FloatArray, *, adverse: bool, never: IntArray
    ) -> IntArray:
        """Per trade, the first candle whose range reaches ``level`` (``never`` where none does).

        An adverse level (a stop) lies below a long and above a short; a favourable one (a
        take-profit) the reverse. Testing ``low`` against a level below and ``-high`` against
        the negated level above makes it one comparison.
        """
        below = self.long if adverse else ~self.long
        extreme = np.where(below, self.low, self.neg_high)
        signed_level = level * np.where((side > 0) == adverse, 1.0, -1.0)
        touched = np.flatnonzero(extreme <= np.repeat(signed_level, self.lengths))
        first = never.copy()
        if touched.size:
            touched_trade = self.trade[touched]
            is_first = np.empty(touched.size, dtype=np.bool_)
            is_first[0] = True
            is_first[1:] = touched_trade[1:] != touched_trade[:-1]
            first[touched_trade[is_first]] = self.bars[touched[is_first]]
        return first
