"""The backtest simulator: target positions over candles in, trades, equity curve and metrics out.

Pure numpy (pandas only at the edges); no Django, nothing from ``bots``. It never loops over
candles: positions change only where the target changes, so every step works on whole arrays of
trades or of candles.

Inputs
------
``candles``: a DataFrame or a mapping of arrays with ``open_time`` (int epoch ms, strictly
ascending, one row per candle), ``open``, ``high``, ``low``, ``close`` (positive, finite);
``volume`` is allowed and unused. ``target[i]`` ∈ {-1, 0, +1} is the position wanted after candle
``i`` CLOSES (NaN counts as 0, flat: an indicator still warming up has no opinion).

Fill model
----------
1. Signals fill at the next open. The target of candle ``i`` is filled at the OPEN of candle
   ``i + 1``; nothing before that open is used (no lookahead), and the target of the last candle
   is never filled. The position held during candle ``j`` is therefore ``target[j - 1]`` (flat in
   candle 0), unless a stop-loss or take-profit closed it earlier.
2. Slippage worsens market fills: a buy fills at ``price * (1 + slippage_bps / 10_000)``, a sell at
   ``price * (1 - slippage_bps / 10_000)``. Market fills are the signal entries and exits, the
   stop-loss exits and the end-of-data close. Take-profit exits are limit orders: no slippage.
3. A flip (+1 → -1 or back) closes and opens at the same open: two fills, two fees, and the new
   position is sized from the cash left after the close.
4. Sizing is all-in with the fee: an entry is made only when flat, so the equity at the fill is
   the cash ``C``, and ``qty = C * position_size / (fill_price * (1 + fee_rate))``. The notional
   plus the entry fee is then exactly ``C * position_size``; fractional quantities are allowed.
   A short is sized the same way (its proceeds are added to the cash).
5. Fees are ``notional * fee_rate`` on each side (entry and exit); a trade's ``fee`` is both sides
   and its ``pnl`` is net of both.
6. Stop-loss / take-profit levels are set from the entry FILL price ``E`` and checked on every
   candle the position is open, the entry candle included (the entry is at its open, so its high
   and low happen after the fill; backtesting.py does the same):
   - long: stop at ``E * (1 - stop_loss)``, hit when low ≤ stop; take-profit at
     ``E * (1 + take_profit)``, hit when high ≥ it.
   - short: stop at ``E * (1 + stop_loss)``, hit when high ≥ stop; take-profit at
     ``E * (1 - take_profit)``, hit when low ≤ it.
   - A stop fills at the stop price, or at the candle's open when the open is already beyond it (a
     gap: the worse of the two), then slippage. A take-profit fills at its price, or at the open
     when the open is already beyond it (the better of the two). On the entry candle the open is
     the entry itself, so only a stop tighter than the slippage can be "beyond" there.
   - When the stop and the take-profit are both hit in one candle, the stop is assumed (the order
     inside a candle is unknown; this is the conservative choice).
   - After a stop or take-profit exit the account stays flat until the target changes; the same
     signal is not entered again. The candle of a stop/take-profit exit is the exit candle.
7. A position still open after the last candle is closed at the last close (a market fill, so
   with slippage and fee) with exit reason ``"end"``; the last equity value includes that close,
   so ``final_equity == initial_cash + sum(trade pnl)`` (up to float rounding).
8. Equity at each candle close is ``cash + signed_qty * close`` (a short's proceeds are in the
   cash, so it is marked to market). An open position is not charged its future exit fee.
9. If a trade leaves the cash at or below zero (an all-in short whose price more than doubled),
   the account is bust: no later trade is entered and the equity stays at that value.

Trade times: ``entry_time`` is the open_time of the entry candle (its open is the fill);
``exit_time`` is the open_time of the candle in which the exit filled: the next signal's fill
candle, the candle that hit the stop/take-profit, or the last candle for ``"end"``.
``entry_bar`` / ``exit_bar`` are the same candles as row indices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtests.metrics import compute_metrics

EXIT_REASONS = ("signal", "stop_loss", "take_profit", "end")
SIGNAL, STOP_LOSS, TAKE_PROFIT, END = range(4)
PRICE_COLUMNS = ("open", "high", "low", "close")
TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "entry_bar",
    "exit_bar",
    "side",
    "qty",
    "entry_price",
    "exit_price",
    "fee",
    "pnl",
    "return",
    "exit_reason",
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Candles: TypeAlias = "pd.DataFrame | Mapping[str, npt.ArrayLike]"


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class BacktestSettings:
    """How the account trades. Fractions are plain fractions: ``0.02`` means 2 %."""

    initial_cash: float = 10_000.0
    fee_rate: float = 0.001
    slippage_bps: float = 0.0
    position_size: float = 1.0
    stop_loss: float | None = None
    take_profit: float | None = None

    def __post_init__(self) -> None:
        for name, (is_valid, wording) in _SETTING_RULES.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_SETTINGS:
                continue
            number = _number(name, value)
            if not is_valid(number):
                raise ValueError(f"{name} must be {wording}, got {value!r}")
            object.__setattr__(self, name, number)


_OPTIONAL_SETTINGS = frozenset({"stop_loss", "take_profit"})
_SETTING_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "initial_cash": (lambda value: value > 0, "greater than 0"),
    "fee_rate": (lambda value: 0 <= value < 1, "at least 0 and below 1"),
    "slippage_bps": (lambda value: 0 <= value < 10_000, "at least 0 and below 10000"),
    "position_size": (lambda value: 0 < value <= 1, "greater than 0 and at most 1"),
    "stop_loss": (lambda value: 0 < value < 1, "greater than 0 and below 1"),
    "take_profit": (lambda value: value > 0, "greater than 0"),
}


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One simulated run.

    ``times[i]`` is candle ``i``'s open_time (epoch ms); ``equity[i]`` the account value at its
    close; ``position[i]`` the signed quantity held at its close. ``trades`` has the columns
    :data:`TRADE_COLUMNS` (``return`` = pnl / entry notional), ``metrics`` the keys of
    :data:`backtests.metrics.METRIC_KEYS`.
    """

    settings: BacktestSettings
    times: IntArray
    equity: FloatArray
    position: FloatArray
    trades: pd.DataFrame
    metrics: dict[str, Any]

    def to_dict(self, *, max_equity_points: int | None = None) -> dict[str, Any]:
        """JSON-able output: settings, metrics, the equity curve and the trades as records.

        ``max_equity_points`` thins the curve to about that many evenly spaced candles (the
        last one always kept); the default keeps every candle.
        """
        keep = _thin(self.times.size, max_equity_points)
        columns = {name: self.trades[name].tolist() for name in TRADE_COLUMNS}
        trades = [
            dict(zip(TRADE_COLUMNS, row, strict=True))
            for row in zip(*columns.values(), strict=True)
        ]
        return {
            "settings": asdict(self.settings),
            "metrics": dict(self.metrics),
            "equity": {
                "time": self.times[keep].tolist(),
                "value": self.equity[keep].tolist(),
            },
            "trades": trades,
        }


def _thin(size: int, max_points: int | None) -> slice | IntArray:
    if max_points is not None and max_points < 2:
        raise ValueError(f"max_equity_points must be at least 2, got {max_points}")
    if max_points is None or size <= max_points:
        return slice(None)
    return np.unique(np.linspace(0, size - 1, max_points).round().astype(np.int64))


@dataclass(frozen=True)
class _Market:
    times: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray


@dataclass(frozen=True)
class _Plan:
    """Trades as they happen in price terms, before sizing (one entry per trade)."""

    side: FloatArray
    entry_bar: IntArray
    exit_bar: IntArray
    entry_price: FloatArray
    exit_price: FloatArray
    reason: npt.NDArray[np.int8]

    def first(self, count: int) -> _Plan:
        return _Plan(
            self.side[:count],
            self.entry_bar[:count],
            self.exit_bar[:count],
            self.entry_price[:count],
            self.exit_price[:count],
            self.reason[:count],
        )


def simulate(
    candles: Candles, target: npt.ArrayLike | pd.Series, settings: BacktestSettings
) -> BacktestResult:
    """Simulate ``target`` over ``candles`` with the fill model of this module's docstring."""
    market = _market(candles)
    wanted = _target(target, market.times.size)
    plan = _plan(market, wanted, settings)
    return _book(market, plan, settings)


def _market(candles: Candles) -> _Market:
    missing = [name for name in ("open_time", *PRICE_COLUMNS) if name not in candles]
    if missing:
        raise ValueError(f"candles lack the column(s) {', '.join(missing)}")
    times = np.asarray(candles["open_time"], dtype=np.int64)
    if times.ndim != 1 or times.size == 0:
        raise ValueError("candles must hold at least one row")
    if times.size > 1 and not bool((np.diff(times) > 0).all()):
        raise ValueError("candle open_time must be strictly ascending")
    prices = {}
    for name in PRICE_COLUMNS:
        column = np.asarray(candles[name], dtype=np.float64)
        if column.shape != times.shape:
            raise ValueError(f"candle column {name} has {column.size} rows, expected {times.size}")
        if not (column.min() > 0 and column.max() < math.inf):
            raise ValueError(f"candle column {name} must be positive and finite")
        prices[name] = column
    return _Market(times=times, **prices)


def _target(target: npt.ArrayLike | pd.Series, size: int) -> npt.NDArray[np.int8]:
    values = np.asarray(target)
    if values.shape != (size,):
        raise ValueError(f"target has shape {values.shape}, expected ({size},) like the candles")
    if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"target must hold -1, 0 or +1, got dtype {values.dtype}")
    if np.issubdtype(values.dtype, np.floating):
        values = np.where(np.isnan(values), 0.0, values)
        valid = bool(((values == -1) | (values == 0) | (values == 1)).all())
    else:
        valid = bool(values.min() >= -1 and values.max() <= 1)
    if not valid:
        raise ValueError("target must hold only -1, 0, +1 (or NaN for flat)")
    return values.astype(np.int8)


def _plan(market: _Market, wanted: npt.NDArray[np.int8], settings: BacktestSettings) -> _Plan:
    """Find the trades: runs of one non-zero held position, cut short by stop/take-profit."""
    size = wanted.size
    held = np.empty(size, dtype=np.int8)
    held[0] = 0
    held[1:] = wanted[:-1]
    starts = np.concatenate(([0], np.flatnonzero(held[1:] != held[:-1]) + 1))
    ends = np.append(starts[1:], size)
    in_market = held[starts] != 0
    entry_bar, natural_end = starts[in_market], ends[in_market]
    side = held[entry_bar].astype(np.float64)
    slip = settings.slippage_bps / 10_000.0
    entry_price = market.open[entry_bar] * (1.0 + side * slip)

    at_end = natural_end == size
    exit_bar = np.where(at_end, size - 1, natural_end)
    raw_exit = np.where(at_end, market.close[-1], market.open[np.minimum(natural_end, size - 1)])
    exit_price = raw_exit * (1.0 - side * slip)
    reason = np.where(at_end, END, SIGNAL).astype(np.int8)

    plan = _Plan(side, entry_bar, exit_bar, entry_price, exit_price, reason)
    if entry_bar.size and (settings.stop_loss is not None or settings.take_profit is not None):
        _cut_at_levels(plan, market, held, natural_end, settings)
    return plan


def _cut_at_levels(
    plan: _Plan,
    market: _Market,
    held: npt.NDArray[np.int8],
    natural_end: IntArray,
    settings: BacktestSettings,
) -> None:
    """End, in place, the trades whose stop-loss or take-profit is hit before their signal exit."""
    side, entry_price = plan.side, plan.entry_price
    held_bars = _HeldBars.of(market, held, natural_end - plan.entry_bar, side)
    never = np.full(side.size, market.times.size, dtype=np.int64)
    stop_level = entry_price * (1.0 - side * (settings.stop_loss or 0.0))
    tp_level = entry_price * (1.0 + side * (settings.take_profit or 0.0))
    stop_bar = tp_bar = never
    if settings.stop_loss is not None:
        stop_bar = held_bars.first_touch(stop_level, side, adverse=True, never=never)
    if settings.take_profit is not None:
        tp_bar = held_bars.first_touch(tp_level, side, adverse=False, never=never)
    stops = stop_bar <= tp_bar  # both in one candle: the stop, conservatively
    hit_bar = np.where(stops, stop_bar, tp_bar)
    hit = np.flatnonzero(hit_bar < natural_end)
    if not hit.size:
        return
    stops, hit_bar, hit_side = stops[hit], hit_bar[hit], side[hit]
    level = np.where(stops, stop_level[hit], tp_level[hit])
    opened = market.open[hit_bar]
    # An open already beyond the level fills at the open: worse for a stop, better for a
    # take-profit. Long take-profits and short stops lie above the price, the others below.
    above = (hit_side > 0) != stops
    raw = np.where(above, np.maximum(level, opened), np.minimum(level, opened))
    slip = settings.slippage_bps / 10_000.0
    plan.exit_price[hit] = np.where(stops, raw * (1.0 - hit_side * slip), raw)
    plan.exit_bar[hit] = hit_bar
    plan.reason[hit] = np.where(stops, STOP_LOSS, TAKE_PROFIT)


@dataclass(frozen=True)
class _HeldBars:
    """Every candle in which a trade would hold its position, in trade order."""

    bars: IntArray
    lengths: IntArray
    trade: IntArray
    long: npt.NDArray[np.bool_]
    low: FloatArray
    neg_high: FloatArray

    @classmethod
    def of(
        cls, market: _Market, held: npt.NDArray[np.int8], lengths: IntArray, side: FloatArray
    ) -> _HeldBars:
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


@dataclass(frozen=True)
class _Sized:
    """The trades of a plan with quantities, fees and the cash before and after each."""

    plan: _Plan
    qty: FloatArray
    entry_fee: FloatArray
    fee: FloatArray
    pnl: FloatArray
    cash_before: FloatArray
    cash_after: FloatArray

    @classmethod
    def of(cls, plan: _Plan, settings: BacktestSettings) -> _Sized:
        """Size each entry from the cash left by the trade before (see the fill model).

        A trade grows the cash by a factor that depends on prices only, so the cash before each
        trade is a cumulative product; trades after one that leaves no cash are dropped.
        """
        fee, initial = settings.fee_rate, settings.initial_cash
        qty_per_cash = settings.position_size / (plan.entry_price * (1.0 + fee))
        gross = plan.side * (plan.exit_price - plan.entry_price)
        growth = 1.0 + qty_per_cash * (gross - fee * (plan.entry_price + plan.exit_price))
        bust = np.flatnonzero(growth <= 0)
        count = int(bust[0]) + 1 if bust.size else growth.size
        kept = plan.first(count)

        cash_after = np.cumprod(growth[:count], dtype=np.float64)
        cash_after *= initial
        cash_before = np.concatenate(([initial], cash_after[:-1]))
        qty = cash_before * qty_per_cash[:count]
        entry_fee = qty * kept.entry_price * fee
        trade_fee = entry_fee + qty * kept.exit_price * fee
        pnl = kept.side * qty * (kept.exit_price - kept.entry_price) - trade_fee
        return cls(kept, qty, entry_fee, trade_fee, pnl, cash_before, cash_after)


def _book(market: _Market, plan: _Plan, settings: BacktestSettings) -> BacktestResult:
    """Size the trades, run the cash through them and build the equity curve and metrics."""
    sized = _Sized.of(plan, settings)
    kept = sized.plan
    equity, position = _equity_curve(market, settings.initial_cash, sized)
    bars_in_market = int((kept.exit_bar - kept.entry_bar).sum() + (kept.reason != SIGNAL).sum())
    trade_return = sized.pnl / (sized.qty * kept.entry_price)
    trades = pd.DataFrame(
        {
            "entry_time": market.times[kept.entry_bar],
            "exit_time": market.times[kept.exit_bar],
            "entry_bar": kept.entry_bar,
            "exit_bar": kept.exit_bar,
            "side": kept.side.astype(np.int8),
            "qty": sized.qty,
            "entry_price": kept.entry_price,
            "exit_price": kept.exit_price,
            "fee": sized.fee,
            "pnl": sized.pnl,
            "return": trade_return,
            "exit_reason": np.array(EXIT_REASONS, dtype=object)[kept.reason],
        },
        columns=list(TRADE_COLUMNS),
    )
    metrics = compute_metrics(
        times=market.times,
        equity=equity,
        close=market.close,
        initial_cash=settings.initial_cash,
        trade_pnl=sized.pnl,
        trade_return=trade_return,
        bars_in_market=bars_in_market,
    )
    return BacktestResult(settings, market.times, equity, position, trades, metrics)


def _equity_curve(market: _Market, initial: float, sized: _Sized) -> tuple[FloatArray, FloatArray]:
    """Equity and position at every close, as alternating flat and held stretches of candles.

    Trade ``k`` is held at the closes ``entry_bar[k] .. exit_bar[k] - 1`` (its exit happens at an
    open or inside the exit candle, or at the very last close); between trades the equity is the
    cash. Each stretch is ``a + b * close``: flat ``a = cash, b = 0``; held ``b = signed qty`` and
    ``a`` = the cash after paying the entry (``cash - fee - signed_qty * entry_price``).
    """
    entry_bar, exit_bar = sized.plan.entry_bar, sized.plan.exit_bar
    signed_qty = sized.plan.side * sized.qty
    size = market.times.size
    edges = np.empty(2 * entry_bar.size + 2, dtype=np.int64)
    edges[0], edges[-1] = 0, size
    edges[1:-1:2], edges[2:-1:2] = entry_bar, exit_bar
    lengths = np.diff(edges)
    offset = np.empty(2 * entry_bar.size + 1)
    offset[0::2] = np.concatenate(([initial], sized.cash_after))
    offset[1::2] = sized.cash_before - sized.entry_fee - signed_qty * sized.plan.entry_price
    slope = np.zeros(2 * entry_bar.size + 1)
    slope[1::2] = signed_qty
    position = np.repeat(slope, lengths)
    equity = np.repeat(offset, lengths) + position * market.close
    return equity, position
