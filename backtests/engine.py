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

Perpetual swaps (``settings.perp``; isolated margin only, the shared math of ``markets.perp``)
------------------------------------------------------------------------------------------------
P1. Leverage ``L`` (a whole number, 1..125; 1 on spot) sizes the margin: ``qty = C *
    position_size / (E * (1/L + fee_rate))``, so margin ``qty * E / L`` plus the entry fee is
    ``C * position_size``; with ``L = 1`` that is rule 4. The cash moves by the trade's pnl only
    (fees, price move, funding); the equity is still ``cash + unrealised pnl`` (rule 8).
P2. Funding: at each funding time ``t`` within the candles (``open_time[0] <= t <=
    open_time[-1]``) a position with ``entry_time < t <= exit_time`` is credited
    ``-side * qty * mark_t * rate_t`` (a positive rate: longs pay). ``mark_t`` is the funding
    row's ``mark_price``, else the open of the candle with ``open_time == t`` (its mark candle's
    open when there is one), else the last close before ``t``. It is settled to the cash, not
    the margin (the liquidation price does not move with it), is in the equity from the close of
    the candle it falls in, and is in the trade's ``pnl`` and ``funding``.
P3. Liquidation: ``E (1 - 1/L) / (1 - m)`` for a long, ``E (1 + 1/L) / (1 + m)`` for a short
    (``m`` = ``maintenance_margin_rate``, no fee term: ``markets.perp.liquidation_price``), from
    the entry fill ``E``. Checked like a stop (rule 6), from the entry candle on: a long is
    liquidated when the low reaches it (at ``L = 1`` it is 0: never), a short when the high does.
    It fills AT that price (no slippage, no gap rule: the insurance fund takes the rest) with the
    fee; exit reason ``"liquidation"``. A stop-loss reached in the same candle wins when its level
    is nearer the entry (passed first), else the liquidation; either beats a take-profit.
P4. Mark candles (``mark``, the candles' timeframe, matched by ``open_time``; a candle without one
    uses its own prices) replace the candles' open/high/low for stop-loss, take-profit and
    liquidation: triggers, and the open of the gap rule. Signals still fill at the candles' open.
P5. ``return`` is pnl / margin (``qty * E / L``): pnl / notional at ``L = 1``. Each trade carries
    its ``leverage`` and ``funding``; the metrics add ``funding_fees`` (signed sum) and
    ``liquidations``. The bust rule (9) stands: funding can bust an account too.

Everything stays vectorised: the funding of a trade per unit is a difference of a cumulative sum
over the funding times (found with ``searchsorted``), a function of prices and times only, so the
cash is still the cumulative product of per-trade growth factors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtests.engine_exits import (
    END,
    EXIT_REASONS,
    LIQUIDATION,
    SIGNAL,
    Levels,
    Market,
    Plan,
    cut_at_levels,
)
from backtests.engine_perp import (
    NO_FUNDING,
    Funding,
    Table,
    align_marks,
    funding_events,
)
from backtests.metrics import compute_metrics
from markets.perp import MAX_LEVERAGE

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
    "leverage",
    "funding",
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
    """How the account trades. Fractions are plain fractions: ``0.02`` means 2 %.

    ``perp`` marks a perpetual swap: ``leverage`` above 1, funding and liquidation at
    ``maintenance_margin_rate`` (isolated margin only) need it.
    """

    initial_cash: float = 10_000.0
    fee_rate: float = 0.001
    slippage_bps: float = 0.0
    position_size: float = 1.0
    stop_loss: float | None = None
    take_profit: float | None = None
    leverage: float = 1.0
    margin_mode: str = "isolated"
    maintenance_margin_rate: float = 0.005  # markets.perp.DEFAULT_TIERS' rate
    perp: bool = False

    def __post_init__(self) -> None:
        for name, (is_valid, wording) in _SETTING_RULES.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_SETTINGS:
                continue
            number = _number(name, value)
            if not is_valid(number):
                raise ValueError(f"{name} must be {wording}, got {value!r}")
            object.__setattr__(self, name, number)
        self._check_perp()

    def _check_perp(self) -> None:
        if not isinstance(self.perp, bool):
            raise ValueError(f"perp must be true or false, got {self.perp!r}")
        if self.margin_mode != "isolated":
            if self.margin_mode == "cross":
                raise ValueError("cross margin is not supported yet")
            raise ValueError(f"margin_mode must be 'isolated', got {self.margin_mode!r}")
        if not self.perp and self.leverage != 1:
            raise ValueError("leverage above 1 needs a perpetual-swap market (perp=True)")
        if 1 / self.leverage <= self.maintenance_margin_rate:
            # markets.perp.liquidation_price's rule: the margin must exceed the maintenance
            raise ValueError(
                f"leverage {self.leverage:g} leaves a margin of {1 / self.leverage:g} of the "
                f"notional, not above the maintenance margin rate "
                f"{self.maintenance_margin_rate:g}: the position would be liquidated at once"
            )


_OPTIONAL_SETTINGS = frozenset({"stop_loss", "take_profit"})
_SETTING_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "initial_cash": (lambda value: value > 0, "greater than 0"),
    "fee_rate": (lambda value: 0 <= value < 1, "at least 0 and below 1"),
    "slippage_bps": (lambda value: 0 <= value < 10_000, "at least 0 and below 10000"),
    "position_size": (lambda value: 0 < value <= 1, "greater than 0 and at most 1"),
    "stop_loss": (lambda value: 0 < value < 1, "greater than 0 and below 1"),
    "take_profit": (lambda value: value > 0, "greater than 0"),
    "leverage": (
        lambda value: value.is_integer() and 1 <= value <= MAX_LEVERAGE,
        f"a whole number from 1 to {MAX_LEVERAGE}",
    ),
    "maintenance_margin_rate": (lambda value: 0 <= value < 1, "at least 0 and below 1"),
}


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One simulated run.

    ``times[i]`` is candle ``i``'s open_time (epoch ms); ``equity[i]`` the account value at its
    close; ``position[i]`` the signed quantity held at its close. ``trades`` has the columns
    :data:`TRADE_COLUMNS` (``return`` = pnl / margin, the entry notional / leverage),
    ``metrics`` the keys of :data:`backtests.metrics.METRIC_KEYS`.
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


def simulate(
    candles: Candles,
    target: npt.ArrayLike | pd.Series,
    settings: BacktestSettings,
    *,
    funding: Table | None = None,
    mark: Table | None = None,
) -> BacktestResult:
    """Simulate ``target`` over ``candles`` with the fill model of this module's docstring.

    ``funding`` (funding times, rates and optionally mark prices) and ``mark`` (mark-price
    candles of the candles' timeframe) are for a perpetual swap (``settings.perp``) only.
    """
    market = _market(candles)
    wanted = _target(target, market.times.size)
    if not settings.perp and (funding is not None or mark is not None):
        raise ValueError("funding and mark prices need a perpetual-swap market (perp=True)")
    trigger = _trigger(market, mark)
    events = funding_events(funding, market.times, trigger.open, market.close)
    plan = _plan(market, trigger, wanted, settings)
    return _book(market, plan, settings, events)


def _trigger(market: Market, mark: Table | None) -> Market:
    """The prices stop-loss, take-profit and liquidation are checked on: the mark candles where
    there are some, else the candles themselves."""
    if mark is None:
        return market
    prices = {name: getattr(market, name) for name in PRICE_COLUMNS}
    aligned, _ = align_marks(mark, market.times, prices)
    return Market(times=market.times, **aligned)


def _market(candles: Candles) -> Market:
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
    return Market(times=times, **prices)


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


def _plan(
    market: Market, trigger: Market, wanted: npt.NDArray[np.int8], settings: BacktestSettings
) -> Plan:
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

    plan = Plan(side, entry_bar, exit_bar, entry_price, exit_price, reason)
    levels = Levels(
        settings.stop_loss,
        settings.take_profit,
        slip,
        settings.perp,
        settings.leverage,
        settings.maintenance_margin_rate,
    )
    if entry_bar.size and levels.any:
        cut_at_levels(plan, trigger, held, natural_end, levels)
    return plan


@dataclass(frozen=True)
class _Sized:
    """The trades of a plan with quantities, fees, funding and the cash before and after each."""

    plan: Plan
    qty: FloatArray
    entry_fee: FloatArray
    fee: FloatArray
    funding: FloatArray
    pnl: FloatArray
    cash_before: FloatArray
    cash_after: FloatArray

    @classmethod
    def of(cls, plan: Plan, settings: BacktestSettings, long_credit: FloatArray) -> _Sized:
        """Size each entry from the cash left by the trade before (see the fill model).

        ``long_credit`` is each trade's funding per unit of a long. A trade grows the cash by a
        factor that depends on prices (and funding per unit) only, so the cash before each
        trade is a cumulative product; trades after one that leaves no cash are dropped.
        """
        fee, initial = settings.fee_rate, settings.initial_cash
        margin_per_notional = 1.0 / settings.leverage
        qty_per_cash = settings.position_size / (plan.entry_price * (margin_per_notional + fee))
        gross = plan.side * (plan.exit_price - plan.entry_price + long_credit)
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
        funding = kept.side * qty * long_credit[:count]
        pnl = kept.side * qty * (kept.exit_price - kept.entry_price) - trade_fee + funding
        return cls(kept, qty, entry_fee, trade_fee, funding, pnl, cash_before, cash_after)


def _book(
    market: Market, plan: Plan, settings: BacktestSettings, funding: Funding = NO_FUNDING
) -> BacktestResult:
    """Size the trades, run the cash through them and build the equity curve and metrics."""
    long_credit = funding.long_credit(market.times[plan.entry_bar], market.times[plan.exit_bar])
    sized = _Sized.of(plan, settings, long_credit)
    kept = sized.plan
    equity, position = _equity_curve(market, settings.initial_cash, sized, funding)
    bars_in_market = int((kept.exit_bar - kept.entry_bar).sum() + (kept.reason != SIGNAL).sum())
    margin = sized.qty * kept.entry_price / settings.leverage
    trade_return = sized.pnl / margin
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
            "leverage": np.full(kept.side.size, settings.leverage),
            "funding": sized.funding,
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
        trade_funding=sized.funding,
        liquidations=int((kept.reason == LIQUIDATION).sum()),
    )
    return BacktestResult(settings, market.times, equity, position, trades, metrics)


def _equity_curve(
    market: Market, initial: float, sized: _Sized, funding: Funding
) -> tuple[FloatArray, FloatArray]:
    """Equity and position at every close, as alternating flat and held stretches of candles.

    Trade ``k`` is held at the closes ``entry_bar[k] .. exit_bar[k] - 1`` (its exit happens at an
    open or inside the exit candle, or at the very last close); between trades the equity is the
    cash. Each stretch is ``a + b * (close + credit)``: flat ``a = cash, b = 0``; held ``b =
    signed qty`` and ``a`` = the cash after paying the entry (``cash - fee - signed_qty * entry``)
    less the funding before the entry. ``credit`` at a close is a long unit's funding of every
    event before the next candle's open (so a funding is in the equity from the close of the
    candle it happens in, as the exit rule charges it), each trade counting from its entry.
    """
    entry_bar, exit_bar = sized.plan.entry_bar, sized.plan.exit_bar
    signed_qty = sized.plan.side * sized.qty
    size = market.times.size
    edges = np.empty(2 * entry_bar.size + 2, dtype=np.int64)
    edges[0], edges[-1] = 0, size
    edges[1:-1:2], edges[2:-1:2] = entry_bar, exit_bar
    lengths = np.diff(edges)
    before_entry = funding.long_credit_to(market.times[entry_bar], inclusive=True)
    offset = np.empty(2 * entry_bar.size + 1)
    offset[0::2] = np.concatenate(([initial], sized.cash_after))
    offset[1::2] = (
        sized.cash_before - sized.entry_fee - signed_qty * (sized.plan.entry_price + before_entry)
    )
    slope = np.zeros(2 * entry_bar.size + 1)
    slope[1::2] = signed_qty
    position = np.repeat(slope, lengths)
    next_open = np.append(market.times[1:], market.times[-1] + 1)
    credit = funding.long_credit_to(next_open, inclusive=False)
    equity = np.repeat(offset, lengths) + position * (market.close + credit)
    return equity, position
