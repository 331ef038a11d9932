"""Perpetual-swap backtests on the shipped XRP/USDT:USDT data against independent references.

The run: the shipped 5-minute perp candles (``markets/data/perp/XRP_USDT_USDT-5m-futures.csv``,
1,999 candles, 2021-11-15 → 2021-11-21), the registered ``ma_cross`` strategy (SMA 10/30, long
and short), all in, Bitget's 0.06 % taker fee a side, 10,000 USDT. Funding comes from the shipped
funding file, its times floored to the 8-hour boundary (the data's README), each at the open of
the 8h mark candle of that time (its floored times equal the mark file's one for one); 12 of its
rows fall inside the candles.

- :func:`reference` is a plain loop, candle by candle, written from the shared perp conventions
  (docs/backtest-engine.md, "Perpetual swaps in the engine") and ``markets.perp``'s Decimal
  formulas for the liquidation price and the funding payment, not from the engine's arrays. The
  engine must make the same trades (candles, sides, exit reasons) at the same prices, with the
  same quantities, fees, funding and final equity to 1e-9 of the notional.
- vectorbt (optional, ``make install-compare``; skipped without it) at leverage 1 with funding
  off, long only and long and short: the same trades, and the same final equity once the exit fee
  we pay for the position still open at the end is taken into account.

``.venv/bin/python -m tests.backtests.test_perp_reference`` prints the figures quoted in
docs/backtest-engine.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.engine import BacktestResult, BacktestSettings, simulate
from markets import perp
from strategies import registry

DATA = Path(__file__).resolve().parents[2] / "markets" / "data" / "perp"
CASH = 10_000.0
FEE = 0.0006  # Bitget's USDT-M taker fee
MAINTENANCE = 0.005
FUNDING_INTERVAL_MS = 8 * 3600 * 1000
MA_CROSS = {"fast": 10, "slow": 30, "ma": "sma"}
AGREEMENT = 1e-9  # of a trade's notional, or relative for the final equity
ROUNDING = 1e-6  # dollars, for vectorbt (its loop against our cumulative product)


# --- the data --------------------------------------------------------------------------------


def load_candles() -> pd.DataFrame:
    return pd.read_csv(DATA / "XRP_USDT_USDT-5m-futures.csv").rename(
        columns={"timestamp": "open_time"}
    )


def load_funding() -> pd.DataFrame:
    """time (floored to the 8h boundary), rate, mark_price (the 8h mark candle's open)."""
    rates = pd.read_csv(DATA / "XRP_USDT_USDT-8h-funding_rate.csv")
    marks = pd.read_csv(DATA / "XRP_USDT_USDT-8h-mark.csv")
    floored = rates["timestamp"] // FUNDING_INTERVAL_MS * FUNDING_INTERVAL_MS
    assert (rates["timestamp"] - floored).max() < 60_000  # stamped a few ms after the boundary
    mark_open = dict(zip(marks["timestamp"], marks["open"], strict=True))
    assert set(floored) == set(mark_open)
    return pd.DataFrame(
        {
            "time": floored,
            "rate": rates["funding_rate"],
            "mark_price": [mark_open[time] for time in floored],
        }
    )


def ma_cross_target(candles: pd.DataFrame, *, allow_short: bool = True) -> np.ndarray:
    strategy = registry.active().create("ma_cross", {**MA_CROSS, "allow_short": allow_short})
    return strategy.positions(candles).to_numpy()


# --- the reference: a plain loop -------------------------------------------------------------


@dataclass
class Position:
    side: int
    qty: float
    entry_price: float
    entry_bar: int
    entry_fee: float
    liquidation: float
    funding: float = 0.0


@dataclass
class Account:
    cash: float
    position: Position | None = None
    bust: bool = False
    trades: list[dict[str, Any]] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)


def decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def liquidation_price(side: int, entry: float, qty: float, leverage: int) -> float:
    tiers = (perp.MaintenanceTier(Decimal(0), None, decimal(MAINTENANCE), perp.MAX_LEVERAGE),)
    side_name = "long" if side > 0 else "short"
    price = perp.liquidation_price(side_name, decimal(entry), decimal(qty), leverage, tiers)
    return float(price)


def reference(
    candles: pd.DataFrame,
    target: np.ndarray,
    *,
    leverage: int,
    funding: pd.DataFrame | None = None,
    mark: pd.DataFrame | None = None,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    slippage_bps: float = 0.0,
) -> Account:
    """The perp conventions, candle by candle: funding due at each open, then the signal fills
    at the open, then liquidation / stop-loss / take-profit inside the candle, then the close."""
    rows = candles[["open_time", "open", "high", "low", "close"]].to_numpy().tolist()
    marks = {} if mark is None else {int(r[0]): r[1:] for r in mark.to_numpy().tolist()}
    events = [] if funding is None else funding[["time", "rate", "mark_price"]].to_numpy().tolist()
    slip = slippage_bps / 10_000
    account = Account(cash=CASH)
    held_before, next_event = 0, 0

    def close(bar: int, price: float, reason: str) -> None:
        position = account.position
        assert position is not None
        exit_fee = position.qty * price * FEE
        gross = position.side * position.qty * (price - position.entry_price)
        account.cash += gross - exit_fee
        fee = position.entry_fee + exit_fee
        account.trades.append(
            {
                "entry_bar": position.entry_bar,
                "exit_bar": bar,
                "side": position.side,
                "qty": position.qty,
                "entry_price": position.entry_price,
                "exit_price": price,
                "fee": fee,
                "funding": position.funding,
                "pnl": gross - fee + position.funding,
                "exit_reason": reason,
            }
        )
        account.position = None
        account.bust = account.cash <= 0

    for bar, (time, open_, high, low, close_) in enumerate(rows):
        # funding due up to this open: paid by a position entered at an earlier open
        while next_event < len(events) and events[next_event][0] <= time:
            event_time, rate, event_mark = events[next_event]
            next_event += 1
            if event_time >= rows[0][0] and account.position is not None:
                if math.isnan(event_mark):
                    event_mark = mark_at(event_time, bar, rows, marks)
                pay_funding(account.position, account, event_mark, rate)

        # the signal of the candle before fills at this open
        held = int(target[bar - 1]) if bar else 0
        if held != held_before:
            if account.position is not None:
                close(bar, open_ * (1 - account.position.side * slip), "signal")
            if held and not account.bust:
                entry = open_ * (1 + held * slip)
                qty = account.cash / (entry * (1 / leverage + FEE))
                entry_fee = qty * entry * FEE
                account.cash -= entry_fee
                liquidation = liquidation_price(held, entry, qty, leverage)
                account.position = Position(held, qty, entry, bar, entry_fee, liquidation)
            held_before = held

        # inside the candle, on the mark candle when there is one
        if account.position is not None:
            trigger = marks.get(int(time), [open_, high, low, close_])
            exit_ = inside_the_candle(account.position, trigger, stop_loss, take_profit, slip)
            if exit_ is not None:
                close(bar, *exit_)

        if bar == len(rows) - 1 and account.position is not None:
            close(bar, close_ * (1 - account.position.side * slip), "end")
        held_now = account.position
        unrealised = 0.0
        if held_now is not None:
            unrealised = held_now.side * held_now.qty * (close_ - held_now.entry_price)
        account.equity.append(account.cash + unrealised)
    return account


def mark_at(time: int, bar: int, rows: list[list[float]], marks: dict[int, list[float]]) -> float:
    """A funding time's mark price when the funding row has none: the open of the candle at that
    time (its mark candle's when there is one), else the last close before it."""
    if rows[bar][0] == time:
        return marks.get(int(time), rows[bar][1:])[0]
    return rows[bar - 1][4]


def pay_funding(position: Position, account: Account, mark: float, rate: float) -> None:
    side = "long" if position.side > 0 else "short"
    paid = float(perp.funding_payment(side, decimal(position.qty), decimal(mark), decimal(rate)))
    position.funding += paid
    account.cash += paid


def inside_the_candle(
    position: Position,
    trigger: list[float],
    stop_loss: float | None,
    take_profit: float | None,
    slip: float,
) -> tuple[float, str] | None:
    """The exit price and reason of a liquidation, stop-loss or take-profit in this candle."""
    open_, high, low = trigger[0], trigger[1], trigger[2]
    side, entry = position.side, position.entry_price

    def adverse(level: float) -> bool:
        return low <= level if side > 0 else high >= level

    def favourable(level: float) -> bool:
        return high >= level if side > 0 else low <= level

    stop = entry * (1 - side * stop_loss) if stop_loss else None
    liquidated = adverse(position.liquidation) and position.liquidation > 0
    stopped = stop is not None and adverse(stop)
    if liquidated and stopped:  # the one nearer the entry is passed first
        assert stop is not None
        liquidated = abs(entry - position.liquidation) < abs(entry - stop)
        stopped = not liquidated
    if liquidated:
        return position.liquidation, "liquidation"
    if stopped:
        assert stop is not None
        worse = min(stop, open_) if side > 0 else max(stop, open_)
        return worse * (1 - side * slip), "stop_loss"
    take = entry * (1 + side * take_profit) if take_profit else None
    if take is not None and favourable(take):
        return (max(take, open_) if side > 0 else min(take, open_)), "take_profit"
    return None


# --- the comparison --------------------------------------------------------------------------


def differences(ours: BacktestResult, theirs: Account) -> dict[str, float]:
    """Largest differences, each money column relative to the trade's notional."""
    mine = ours.trades
    expected = pd.DataFrame(theirs.trades)
    notional = expected["qty"] * expected["entry_price"]
    out = {
        name: float(((mine[name] - expected[name]).abs() / notional).max())
        for name in ("fee", "funding", "pnl")
    }
    for name in ("qty", "entry_price", "exit_price"):
        out[name] = float(((mine[name] - expected[name]).abs() / expected[name]).max())
    final = theirs.equity[-1]
    out["final_equity"] = abs(ours.metrics["final_equity"] - final) / final
    out["equity_curve"] = float(np.max(np.abs(ours.equity - theirs.equity) / theirs.equity))
    return out


def assert_agrees(ours: BacktestResult, theirs: Account) -> dict[str, float]:
    mine, expected = ours.trades, pd.DataFrame(theirs.trades)
    assert len(mine) == len(expected) > 10
    for name in ("entry_bar", "exit_bar", "side", "exit_reason"):
        assert mine[name].tolist() == expected[name].tolist(), name
    found = differences(ours, theirs)
    assert max(found.values()) < AGREEMENT, found
    assert ours.metrics["funding_fees"] == pytest.approx(expected["funding"].sum(), rel=AGREEMENT)
    assert ours.metrics["liquidations"] == (expected["exit_reason"] == "liquidation").sum()
    return found


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_candles()


@pytest.fixture(scope="module")
def funding() -> pd.DataFrame:
    return load_funding()


@pytest.fixture(scope="module")
def target(candles: pd.DataFrame) -> np.ndarray:
    wanted = ma_cross_target(candles)
    assert set(np.unique(wanted)) == {-1, 0, 1}
    return wanted


CASES = {
    # name: leverage, stop_loss, take_profit, slippage_bps
    "x3": (3, None, None, 0.0),
    "x3 stop 1% take 2% slip 2bp": (3, 0.01, 0.02, 2.0),
    "x50": (50, None, None, 0.0),
    # the long's liquidation is 1.5075 % away, farther than the stop; the short's 1.4925 %, nearer
    "x50 stop 1.5%": (50, 0.015, None, 0.0),
    "x125 slip 5bp": (125, None, None, 5.0),
}


def run_both(
    candles: pd.DataFrame,
    target: np.ndarray,
    funding: pd.DataFrame,
    case: tuple[int, float | None, float | None, float],
    mark: pd.DataFrame | None = None,
) -> tuple[BacktestResult, Account]:
    leverage, stop_loss, take_profit, slippage_bps = case
    settings = BacktestSettings(
        initial_cash=CASH,
        fee_rate=FEE,
        slippage_bps=slippage_bps,
        stop_loss=stop_loss,
        take_profit=take_profit,
        leverage=leverage,
        maintenance_margin_rate=MAINTENANCE,
        perp=True,
    )
    ours = simulate(candles, target, settings, funding=funding, mark=mark)
    theirs = reference(
        candles,
        target,
        leverage=leverage,
        funding=funding,
        mark=mark,
        stop_loss=stop_loss,
        take_profit=take_profit,
        slippage_bps=slippage_bps,
    )
    return ours, theirs


@pytest.mark.parametrize("case", list(CASES))
def test_the_engine_agrees_with_a_plain_loop_on_funding_liquidation_and_stops(
    candles: pd.DataFrame, target: np.ndarray, funding: pd.DataFrame, case: str
) -> None:
    # given / when the engine and the reference loop run the same perp backtest
    ours, theirs = run_both(candles, target, funding, CASES[case])

    # then the same trades, prices, sizes, fees, funding and equity
    assert_agrees(ours, theirs)
    trades = ours.trades
    assert (trades["funding"] != 0).sum() >= 5  # funding was charged, so the check has teeth
    leverage = CASES[case][0]
    assert (trades["leverage"] == leverage).all()
    reasons = set(trades["exit_reason"])
    if leverage >= 50:
        assert "liquidation" in reasons
    if case == "x50 stop 1.5%":  # both rules of the same-candle race are exercised
        stopped = trades[trades["exit_reason"] == "stop_loss"]
        liquidated = trades[trades["exit_reason"] == "liquidation"]
        assert (stopped["side"] == 1).all()
        assert len(stopped) > 0
        assert (liquidated["side"] == -1).all()
        assert len(liquidated) > 0
    if case.startswith("x3 stop"):
        assert {"stop_loss", "take_profit"} <= reasons


def test_the_comparison_catches_funding_of_the_wrong_sign(
    candles: pd.DataFrame, target: np.ndarray, funding: pd.DataFrame
) -> None:
    # given the engine's run, and the reference run with shorts paying a positive rate
    ours, _ = run_both(candles, target, funding, CASES["x3"])
    theirs = reference(candles, target, leverage=3, funding=funding.assign(rate=-funding["rate"]))

    # then the comparison fails
    with pytest.raises(AssertionError):
        assert_agrees(ours, theirs)


# --- hourly candles with mark-price candles ---------------------------------------------------


def load_hourly() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The complete hours of the 5m candles (166), and the shipped 1h mark candles (100, another
    feed, within 0.2 % of the trade prices): stops, take-profits and liquidations on the mark."""
    candles = load_candles()
    hour = candles["open_time"] // 3_600_000 * 3_600_000
    hourly = candles.groupby(hour).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        rows=("open", "size"),
    )
    hourly = hourly[hourly["rows"] == 12].drop(columns="rows").rename_axis("open_time")
    mark = pd.read_csv(DATA / "XRP_USDT_USDT-1h-mark.csv").rename(
        columns={"timestamp": "open_time"}
    )
    return hourly.reset_index(), mark[["open_time", "open", "high", "low", "close"]]


HOURLY_CASES = {
    "1h x40 take 0.5%": (40, None, 0.005, 0.0),
    "1h x10 stop 0.3% take 0.6% slip 2bp": (10, 0.003, 0.006, 2.0),
}
HOURLY_MA_CROSS = {"fast": 5, "slow": 12, "ma": "sma", "allow_short": True}


@pytest.mark.parametrize("case", list(HOURLY_CASES))
def test_the_engine_agrees_with_the_plain_loop_on_mark_price_triggers(
    funding: pd.DataFrame, case: str
) -> None:
    # given hourly candles, their mark candles, and ma_cross 5/12
    candles, mark = load_hourly()
    wanted = registry.active().create("ma_cross", HOURLY_MA_CROSS).positions(candles).to_numpy()

    # when the engine and the reference run it with the marks
    ours, theirs = run_both(candles, wanted, funding, HOURLY_CASES[case], mark=mark)

    # then they agree, and the marks changed an exit (so they were used)
    assert_agrees(ours, theirs)
    without = simulate(candles, wanted, ours.settings, funding=funding)
    assert not ours.trades[["exit_bar", "exit_price"]].equals(
        without.trades[["exit_bar", "exit_price"]]
    )


# --- vectorbt, leverage 1, funding off -------------------------------------------------------


@pytest.fixture(scope="module")
def vbt() -> ModuleType:
    return pytest.importorskip("vectorbt")


def run_vectorbt(vbt: ModuleType, candles: pd.DataFrame, target: np.ndarray) -> Any:
    """The position held in candle ``j`` is ``target[j - 1]``, entered or left at its open;
    ``size=inf`` is all the cash, the fee included, for a long and a short alike."""
    index = pd.DatetimeIndex(pd.to_datetime(candles["open_time"], unit="ms"))
    held = np.concatenate(([0], target[:-1]))

    def series(values: np.ndarray) -> pd.Series:
        return pd.Series(values, index=index)

    return vbt.Portfolio.from_signals(
        series(candles["close"].to_numpy()),
        entries=series(held > 0),
        exits=series(held <= 0),
        short_entries=series(held < 0),
        short_exits=series(held >= 0),
        price=series(candles["open"].to_numpy()),
        fees=FEE,
        size=np.inf,
        init_cash=CASH,
        freq="5min",
    )


def vectorbt_gaps(ours: BacktestResult, portfolio: Any) -> dict[str, float]:
    """Checks that vectorbt made our trades; returns the largest differences."""
    theirs, trades = portfolio.trades.records, ours.trades
    assert len(trades) == len(theirs) > 30
    np.testing.assert_array_equal(trades["entry_bar"], theirs["entry_idx"])
    np.testing.assert_array_equal(trades["exit_bar"], theirs["exit_idx"])
    np.testing.assert_array_equal(trades["side"] < 0, theirs["direction"] == 1)
    np.testing.assert_array_equal(trades["entry_price"], theirs["entry_price"])
    np.testing.assert_array_equal(trades["exit_price"], theirs["exit_price"])
    # the last position is still open at the end: we close it at the last close and pay the
    # exit fee (fill model rule 7), vectorbt marks it at that close without the fee
    assert trades["exit_reason"].iloc[-1] == "end"
    assert theirs["status"].iloc[-1] == 0
    assert (theirs["status"].iloc[:-1] == 1).all()
    last = trades.iloc[-1]
    exit_fee = last["qty"] * last["exit_price"] * FEE
    their_pnl = theirs["pnl"].to_numpy().copy()
    their_pnl[-1] -= exit_fee
    return {
        "qty gap": float(np.max(np.abs(trades["qty"] - theirs["size"]))),
        "pnl gap": float(np.max(np.abs(trades["pnl"] - their_pnl))),
        "final equity gap": abs(portfolio.final_value() - exit_fee - ours.metrics["final_equity"]),
        # every close but the last, where we paid the exit fee
        "equity curve gap": float(
            np.max(np.abs(ours.equity[:-1] - portfolio.value().to_numpy()[:-1]))
        ),
        "our last exit fee": exit_fee,
    }


@pytest.mark.parametrize("allow_short", [False, True], ids=["long only", "long and short"])
def test_vectorbt_makes_the_same_perp_trades_at_leverage_1(
    vbt: ModuleType, candles: pd.DataFrame, allow_short: bool
) -> None:
    # given a perp backtest at leverage 1 without funding (a short at leverage 1 is liquidated
    # only if the price nearly doubles, which it does not here)
    wanted = ma_cross_target(candles, allow_short=allow_short)
    settings = BacktestSettings(initial_cash=CASH, fee_rate=FEE, perp=True)

    # when both engines run it
    ours = simulate(candles, wanted, settings)
    portfolio = run_vectorbt(vbt, candles, wanted)

    # then the same trades, sizes and pnl; the final equity differs by our last exit fee only
    gaps = vectorbt_gaps(ours, portfolio)
    assert (ours.trades["side"] == -1).any() == allow_short
    assert ours.metrics["liquidations"] == 0
    assert ours.metrics["funding_fees"] == 0.0
    assert gaps["qty gap"] < 1e-9
    assert gaps["pnl gap"] < ROUNDING
    assert gaps["final equity gap"] < ROUNDING
    assert gaps["equity curve gap"] < ROUNDING


# --- the figures -----------------------------------------------------------------------------


def summary(ours: BacktestResult, theirs: Account, found: dict[str, float]) -> dict[str, Any]:
    return {
        "trades": len(ours.trades),
        "exit reasons": ours.trades["exit_reason"].value_counts().to_dict(),
        "trades paying or receiving funding": int((ours.trades["funding"] != 0).sum()),
        "funding_fees": ours.metrics["funding_fees"],
        "final_equity": ours.metrics["final_equity"],
        "reference final equity": theirs.equity[-1],
        "max relative difference": max(found.values()),
    }


def figures() -> Mapping[str, Mapping[str, Any]]:
    """What docs/backtest-engine.md quotes, measured afresh."""
    candles, funding = load_candles(), load_funding()
    target = ma_cross_target(candles)
    out: dict[str, Mapping[str, Any]] = {}
    for case, values in CASES.items():
        ours, theirs = run_both(candles, target, funding, values)
        out[case] = summary(ours, theirs, assert_agrees(ours, theirs))
    hourly, mark = load_hourly()
    wanted = registry.active().create("ma_cross", HOURLY_MA_CROSS).positions(hourly).to_numpy()
    for case, values in HOURLY_CASES.items():
        ours, theirs = run_both(hourly, wanted, funding, values, mark=mark)
        out[case] = summary(ours, theirs, assert_agrees(ours, theirs))
    try:
        import vectorbt
    except ImportError:
        return out
    for allow_short in (False, True):
        wanted = ma_cross_target(candles, allow_short=allow_short)
        settings = BacktestSettings(initial_cash=CASH, fee_rate=FEE, perp=True)
        ours = simulate(candles, wanted, settings)
        portfolio = run_vectorbt(vectorbt, candles, wanted)
        gaps = vectorbt_gaps(ours, portfolio)
        out[f"vectorbt, {'long and short' if allow_short else 'long only'}"] = {
            "trades": len(ours.trades),
            "final_equity": ours.metrics["final_equity"],
            "vectorbt final_value": portfolio.final_value(),
            **gaps,
        }
    return out


if __name__ == "__main__":
    for name, values in figures().items():
        print(name)
        for key, value in values.items():
            print(f"    {key}: {value}")
