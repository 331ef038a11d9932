"""The backtest simulator on hand-made candles (pure numpy/pandas, no database).

Most tests use one 6-candle market, one minute apart. Unless a test says otherwise the account
starts with 10 010 and pays a 0.1 % fee, so an all-in entry at 100 buys exactly
10 010 / (100 * 1.001) = 100 units for a 10 000 notional plus a 10 fee.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.engine import TRADE_COLUMNS, BacktestSettings, simulate
from backtests.metrics import METRIC_KEYS

MINUTE = 60_000
T0 = 1_700_000_000_000

#          open   high   low  close
MARKET = [
    (100.0, 101.0, 99.0, 100.0),  # 0
    (100.0, 102.0, 99.0, 101.0),  # 1: a signal here fills at candle 2's open
    (100.0, 104.5, 99.0, 104.0),  # 2
    (104.0, 109.0, 103.0, 108.0),  # 3
    (110.0, 111.0, 107.0, 109.0),  # 4
    (109.0, 110.0, 105.0, 106.0),  # 5
]
FEE = BacktestSettings(initial_cash=10_010, fee_rate=0.001)
NO_FEE = BacktestSettings(initial_cash=10_000, fee_rate=0.0)


def candles(rows: list[tuple[float, float, float, float]] = MARKET) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["open", "high", "low", "close"])
    table.insert(0, "open_time", T0 + MINUTE * np.arange(len(rows), dtype=np.int64))
    table["volume"] = 1.0
    return table


def with_candle(index: int, row: tuple[float, float, float, float]) -> pd.DataFrame:
    rows = list(MARKET)
    rows[index] = row
    return candles(rows)


def only_trade(result: Any) -> dict[str, Any]:
    assert len(result.trades) == 1
    return dict(result.trades.iloc[0])


def test_it_fills_a_long_round_trip_at_the_next_opens() -> None:
    # given long after candle 1 closes, flat after candle 3 closes
    target = np.array([0, 1, 1, 0, 0, 0])

    # when
    result = simulate(candles(), target, FEE)

    # then it buys at candle 2's open (100) and sells at candle 4's open (110)
    trade = only_trade(result)
    assert trade["entry_time"] == T0 + 2 * MINUTE
    assert trade["exit_time"] == T0 + 4 * MINUTE
    assert trade["side"] == 1
    assert trade["entry_price"] == 100.0
    assert trade["exit_price"] == 110.0
    assert trade["qty"] == pytest.approx(100.0)  # 10 010 / (100 * 1.001)
    assert trade["fee"] == pytest.approx(21.0)  # 10 000 * 0.001 + 11 000 * 0.001
    assert trade["pnl"] == pytest.approx(979.0)  # 100 * (110 - 100) - 21
    assert trade["return"] == pytest.approx(0.0979)  # 979 / 10 000 notional
    assert trade["exit_reason"] == "signal"
    # cash is 0 after the entry, so equity is 100 units * close while long
    assert result.equity == pytest.approx([10_010, 10_010, 10_400, 10_800, 10_989, 10_989])
    assert result.position == pytest.approx([0, 0, 100, 100, 0, 0])
    assert result.metrics["final_equity"] == pytest.approx(10_989.0)  # 10 010 + 979
    assert result.metrics["total_return"] == pytest.approx(979 / 10_010)
    assert result.metrics["trade_count"] == 1
    assert result.metrics["exposure"] == pytest.approx(2 / 6)  # in the market in candles 2 and 3
    assert result.metrics["buy_and_hold_return"] == pytest.approx(0.06)  # 106 / 100 - 1


def test_it_moves_both_fills_against_the_trade_by_the_slippage() -> None:
    # given 50 bps of slippage and no fee
    settings = BacktestSettings(initial_cash=10_050, fee_rate=0.0, slippage_bps=50)

    # when
    trade = only_trade(simulate(candles(), np.array([0, 1, 1, 0, 0, 0]), settings))

    # then the buy pays 0.5 % more and the sell gets 0.5 % less
    assert trade["entry_price"] == pytest.approx(100.5)  # 100 * 1.005
    assert trade["exit_price"] == pytest.approx(109.45)  # 110 * 0.995
    assert trade["qty"] == pytest.approx(100.0)  # 10 050 / 100.5
    assert trade["pnl"] == pytest.approx(895.0)  # 100 * (109.45 - 100.5)


def test_it_runs_a_short_round_trip_marked_to_market() -> None:
    # given short after candle 1, flat after candle 3, while the price rises from 100 to 110
    target = np.array([0, -1, -1, 0, 0, 0])

    # when
    result = simulate(candles(), target, FEE)

    # then it sells 100 units at 100 and buys them back at 110
    trade = only_trade(result)
    assert trade["side"] == -1
    assert (trade["entry_price"], trade["exit_price"]) == (100.0, 110.0)
    assert trade["qty"] == pytest.approx(100.0)
    assert trade["fee"] == pytest.approx(21.0)
    assert trade["pnl"] == pytest.approx(-1021.0)  # -100 * (110 - 100) - 21
    # cash = 10 010 + 10 000 proceeds - 10 fee = 20 000; equity = 20 000 - 100 * close
    assert result.equity == pytest.approx([10_010, 10_010, 9_600, 9_200, 8_989, 8_989])
    assert result.position == pytest.approx([0, 0, -100, -100, 0, 0])


def test_it_flips_long_to_short_with_two_fills_and_two_fees() -> None:
    # given long after candle 1 and short after candle 3 until the end
    target = np.array([0, 1, 1, -1, -1, -1])

    # when
    result = simulate(candles(), target, FEE)

    # then the long closes and the short opens at candle 4's open (110)
    long, short = (dict(row) for _, row in result.trades.iterrows())
    assert long["exit_time"] == short["entry_time"] == T0 + 4 * MINUTE
    assert long["exit_price"] == short["entry_price"] == 110.0
    assert long["pnl"] == pytest.approx(979.0)
    # the short is sized from the 10 989 left after the close, fee included
    short_qty = 10_989 / (110 * 1.001)
    assert short["side"] == -1
    assert short["qty"] == pytest.approx(short_qty)
    # it is still open after the last candle, so it closes at the last close (106)
    assert short["exit_reason"] == "end"
    assert short["exit_price"] == 106.0
    assert short["fee"] == pytest.approx(short_qty * (110 + 106) * 0.001)
    assert short["pnl"] == pytest.approx(short_qty * (110 - 106) - short["fee"])
    assert result.metrics["final_equity"] == pytest.approx(10_989 + short["pnl"])
    assert result.equity[4] == pytest.approx(10_989 - short_qty * 0.11 + short_qty * (110 - 109))


def test_it_closes_a_position_still_open_at_the_last_close() -> None:
    # given long from candle 4's open (110) to the end, no fees
    target = np.array([0, 0, 0, 1, 1, 1])

    # when
    result = simulate(candles(), target, NO_FEE)

    # then
    trade = only_trade(result)
    assert trade["exit_reason"] == "end"
    assert trade["exit_time"] == T0 + 5 * MINUTE
    assert trade["exit_price"] == 106.0
    assert trade["pnl"] == pytest.approx(10_000 / 110 * (106 - 110))
    assert result.equity[-1] == pytest.approx(10_000 + trade["pnl"])


def test_it_never_fills_the_last_candles_signal() -> None:
    # given a signal only on the last candle
    target = np.array([0, 0, 0, 0, 0, 1])

    # when
    result = simulate(candles(), target, FEE)

    # then there is no next open to fill it at
    assert result.trades.empty
    assert result.equity == pytest.approx([10_010] * 6)
    assert result.metrics["trade_count"] == 0
    assert result.metrics["win_rate"] is None


# Stop-loss and take-profit: long 100 units from candle 2's open at 100, no fees, with the
# signal exit due at candle 5's open. A 5 % stop is at 95, a 5 % take-profit at 105.
HOLD_TO_5 = np.array([0, 1, 1, 1, 1, 0])
STOP = BacktestSettings(initial_cash=10_000, fee_rate=0.0, stop_loss=0.05)
TAKE = BacktestSettings(initial_cash=10_000, fee_rate=0.0, take_profit=0.05)
BOTH = BacktestSettings(initial_cash=10_000, fee_rate=0.0, stop_loss=0.05, take_profit=0.05)


def test_it_exits_at_the_stop_price_when_a_candle_trades_through_it() -> None:
    # given candle 3 opens at 104 and dips to 94
    market = with_candle(3, (104.0, 105.0, 94.0, 100.0))

    # when
    result = simulate(market, HOLD_TO_5, STOP)

    # then it sells at the stop, 95, in candle 3 and stays flat though the target stays long
    trade = only_trade(result)
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_time"] == T0 + 3 * MINUTE
    assert trade["exit_price"] == pytest.approx(95.0)
    assert trade["pnl"] == pytest.approx(-500.0)
    assert result.equity == pytest.approx([10_000, 10_000, 10_400, 9_500, 9_500, 9_500])


def test_it_fills_a_stop_gapped_through_at_the_worse_open() -> None:
    # given candle 3 opens at 90, below the 95 stop
    market = with_candle(3, (90.0, 92.0, 88.0, 91.0))

    # when
    trade = only_trade(simulate(market, HOLD_TO_5, STOP))

    # then
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == 90.0
    assert trade["pnl"] == pytest.approx(-1_000.0)


def test_it_checks_the_stop_from_the_entry_candle_on() -> None:
    # given the entry candle itself (opening at 100) falls to 94
    market = with_candle(2, (100.0, 101.0, 94.0, 96.0))

    # when
    trade = only_trade(simulate(market, HOLD_TO_5, STOP))

    # then
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_time"] == trade["entry_time"] == T0 + 2 * MINUTE
    assert trade["exit_price"] == pytest.approx(95.0)


def test_it_slips_a_stop_exit_like_any_market_sell() -> None:
    # given 100 bps of slippage: the buy fills at 101, so the 5 % stop is at 95.95
    settings = BacktestSettings(initial_cash=10_000, fee_rate=0.0, slippage_bps=100, stop_loss=0.05)
    market = with_candle(3, (104.0, 105.0, 94.0, 100.0))

    # when
    trade = only_trade(simulate(market, HOLD_TO_5, settings))

    # then the sell fills 1 % below the stop
    assert trade["entry_price"] == pytest.approx(101.0)
    assert trade["exit_price"] == pytest.approx(95.95 * 0.99)


def test_it_takes_profit_at_the_level_and_at_a_better_gap_open() -> None:
    # given candle 3 reaching 106, or candle 3 opening at 107
    touched = with_candle(3, (104.0, 106.0, 103.0, 105.5))
    gapped = with_candle(3, (107.0, 108.0, 106.0, 107.5))

    # when
    at_level = only_trade(simulate(touched, HOLD_TO_5, TAKE))
    at_open = only_trade(simulate(gapped, HOLD_TO_5, TAKE))

    # then
    assert at_level["exit_reason"] == at_open["exit_reason"] == "take_profit"
    assert at_level["exit_price"] == pytest.approx(105.0)
    assert at_open["exit_price"] == 107.0
    assert at_open["pnl"] == pytest.approx(700.0)


def test_it_assumes_the_stop_when_one_candle_hits_both_levels() -> None:
    # given candle 3 ranges from 94 to 106: both 95 and 105 were touched, order unknown
    market = with_candle(3, (100.0, 106.0, 94.0, 100.0))

    # when
    trade = only_trade(simulate(market, HOLD_TO_5, BOTH))

    # then
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == pytest.approx(95.0)


def test_it_mirrors_stop_and_take_profit_for_a_short() -> None:
    # given a short from 100: the stop is at 105, the take-profit at 95
    short = -HOLD_TO_5
    rises = with_candle(3, (104.0, 106.0, 103.0, 105.0))
    falls = with_candle(3, (98.0, 99.0, 94.0, 96.0))

    # when
    stopped = only_trade(simulate(rises, short, BOTH))
    took = only_trade(simulate(falls, short, BOTH))

    # then
    assert stopped["exit_reason"] == "stop_loss"
    assert stopped["exit_price"] == pytest.approx(105.0)
    assert stopped["pnl"] == pytest.approx(-500.0)
    assert took["exit_reason"] == "take_profit"
    assert took["exit_price"] == pytest.approx(95.0)
    assert took["pnl"] == pytest.approx(500.0)


def test_it_enters_again_after_a_stop_once_the_target_changes() -> None:
    # given a stop in candle 3, then flat after candle 3 and long again after candle 4
    market = with_candle(3, (104.0, 105.0, 94.0, 100.0))
    target = np.array([0, 1, 1, 0, 1, 1])

    # when
    result = simulate(market, target, STOP)

    # then the second long enters at candle 5's open and is closed at the end
    first, second = (dict(row) for _, row in result.trades.iterrows())
    assert first["exit_reason"] == "stop_loss"
    assert second["entry_time"] == T0 + 5 * MINUTE
    assert second["exit_reason"] == "end"


def test_it_sizes_a_fraction_of_the_equity() -> None:
    # given half the equity per trade and no fee
    settings = BacktestSettings(initial_cash=10_000, fee_rate=0.0, position_size=0.5)

    # when
    result = simulate(candles(), np.array([0, 1, 1, 0, 0, 0]), settings)

    # then it buys 50 units at 100 and keeps 5 000 in cash
    assert only_trade(result)["qty"] == pytest.approx(50.0)
    assert result.equity[3] == pytest.approx(5_000 + 50 * 108)
    assert result.metrics["final_equity"] == pytest.approx(10_500.0)


def test_it_stops_trading_once_a_short_has_lost_all_the_cash() -> None:
    # given a short of 100 units from 100 that is bought back at 250, then a long signal
    market = with_candle(4, (250.0, 260.0, 240.0, 255.0))
    target = np.array([0, -1, -1, 0, 1, 1])

    # when
    result = simulate(market, target, NO_FEE)

    # then cash is 20 000 - 25 000 = -5 000: bust, so the long is never entered
    trade = only_trade(result)
    assert trade["pnl"] == pytest.approx(-15_000.0)
    assert result.equity[4:] == pytest.approx([-5_000, -5_000])
    assert result.metrics["total_return"] == pytest.approx(-1.5)
    assert result.metrics["cagr"] == -1.0
    json.dumps(result.to_dict(), allow_nan=False)


def test_it_accepts_numpy_arrays_and_nan_warm_up_targets() -> None:
    # given the same market as a dict of arrays and a float target with NaN warm-up
    table = candles()
    arrays = {name: table[name].to_numpy() for name in table.columns}
    target = np.array([np.nan, 1.0, 1.0, 0.0, 0.0, 0.0])

    # when
    from_arrays = simulate(arrays, target, FEE)
    from_frame = simulate(table, pd.Series([0, 1, 1, 0, 0, 0]), FEE)

    # then
    assert from_arrays.equity.tolist() == from_frame.equity.tolist()
    assert from_arrays.trades.equals(from_frame.trades)


def test_it_gives_json_output_for_storage() -> None:
    # given
    result = simulate(candles(), np.array([0, 1, 1, -1, -1, -1]), FEE)

    # when
    output = result.to_dict()
    thinned = result.to_dict(max_equity_points=3)

    # then
    decoded = json.loads(json.dumps(output, allow_nan=False))
    assert decoded["settings"]["fee_rate"] == 0.001
    assert list(decoded["metrics"]) == list(METRIC_KEYS)
    assert decoded["equity"]["time"][0] == T0
    assert decoded["equity"]["value"] == pytest.approx(result.equity.tolist())
    assert [list(trade) for trade in decoded["trades"]] == [list(TRADE_COLUMNS)] * 2
    assert [trade["exit_reason"] for trade in decoded["trades"]] == ["signal", "end"]
    assert thinned["equity"]["time"] == [T0, T0 + 2 * MINUTE, T0 + 5 * MINUTE]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ([0, 1, 2, 0, 0, 0], "only -1, 0, \\+1"),
        ([0, 1, 0.5, 0, 0, 0], "only -1, 0, \\+1"),
        ([0, 1, 0], "shape"),
        ([True, False, True, False, True, False], "dtype bool"),
    ],
)
def test_it_rejects_a_malformed_target(target: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(candles(), np.array(target), FEE)


def test_it_rejects_malformed_candles() -> None:
    # given
    unordered = candles()
    unordered.loc[3, "open_time"] = T0
    missing = candles().drop(columns=["low"])
    broken = with_candle(2, (100.0, 104.5, float("nan"), 104.0))
    target = np.zeros(6)

    # when / then
    with pytest.raises(ValueError, match="strictly ascending"):
        simulate(unordered, target, FEE)
    with pytest.raises(ValueError, match="lack the column\\(s\\) low"):
        simulate(missing, target, FEE)
    with pytest.raises(ValueError, match="low must be positive and finite"):
        simulate(broken, target, FEE)
    with pytest.raises(ValueError, match="at least one row"):
        simulate(candles([]), np.zeros(0), FEE)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("initial_cash", 0),
        ("initial_cash", -5.0),
        ("initial_cash", math.inf),
        ("fee_rate", -0.001),
        ("fee_rate", 1.0),
        ("slippage_bps", -1),
        ("slippage_bps", 10_000),
        ("position_size", 0),
        ("position_size", 1.5),
        ("stop_loss", 0),
        ("stop_loss", 1.0),
        ("take_profit", 0),
        ("take_profit", -0.1),
        ("fee_rate", math.nan),
        ("fee_rate", "0.001"),
        ("position_size", True),
    ],
)
def test_it_rejects_invalid_settings(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        BacktestSettings(**{field: value})


def test_it_accepts_the_boundary_settings() -> None:
    # when
    settings = BacktestSettings(initial_cash=1, fee_rate=0, position_size=1, stop_loss=0.5)

    # then integers are kept as floats
    assert settings.initial_cash == 1.0
    assert isinstance(settings.initial_cash, float)
    assert settings.take_profit is None


# Properties on random markets ------------------------------------------------------------


def random_market(seed: int, size: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, size)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.003, size))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.005, size)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.005, size)))
    rows = list(zip(open_, high, low, close, strict=True))
    # targets that usually repeat the previous one, so positions last a few candles
    target = rng.integers(-1, 2, size)
    keep = rng.random(size) < 0.6
    for index in np.flatnonzero(keep[1:]) + 1:
        target[index] = target[index - 1]
    return candles(rows), target


RANDOM_SETTINGS = [
    BacktestSettings(),
    BacktestSettings(fee_rate=0.01, slippage_bps=25, position_size=0.5),
    BacktestSettings(stop_loss=0.01, take_profit=0.02, slippage_bps=5),
    BacktestSettings(fee_rate=0.0, stop_loss=0.03),
    BacktestSettings(fee_rate=0.002, take_profit=0.01),
]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("account", RANDOM_SETTINGS)
def test_it_never_looks_ahead(seed: int, account: BacktestSettings) -> None:
    # given a random market, and a copy whose candles and targets after candle k are different
    market, target = random_market(seed, 120)
    k = 40 + seed * 13
    rng = np.random.default_rng(1000 + seed)
    other_market = market.copy()
    prices = ["open", "high", "low", "close"]
    other_market.loc[k + 1 :, prices] *= rng.uniform(0.8, 1.25, size=(120 - k - 1, 1))
    other_target = target.copy()
    other_target[k + 1 :] = rng.integers(-1, 2, 120 - k - 1)

    # when
    seen = simulate(market, target, account)
    changed = simulate(other_market, other_target, account)

    # then nothing up to candle k differs: trades that ended by then, and the equity
    done = seen.trades[seen.trades.exit_bar <= k].reset_index(drop=True)
    other_done = changed.trades[changed.trades.exit_bar <= k].reset_index(drop=True)
    pd.testing.assert_frame_equal(done, other_done)
    assert seen.equity[: k + 1].tolist() == changed.equity[: k + 1].tolist()
    assert not seen.trades.equals(changed.trades)  # the change did reach later trades


def reference_simulation(
    market: pd.DataFrame, target: np.ndarray, settings: BacktestSettings
) -> tuple[list[tuple[Any, ...]], list[float]]:
    """The fill model written the obvious way: one candle at a time."""
    slip, fee = settings.slippage_bps / 10_000, settings.fee_rate
    cash, qty, side, entry = settings.initial_cash, 0.0, 0, (0, 0.0, 0.0)
    trades: list[tuple[Any, ...]] = []
    equity: list[float] = []

    def close_position(price: float, bar: int, reason: str) -> None:
        nonlocal cash, qty, side
        exit_fee = abs(qty) * price * fee
        cash += qty * price - exit_fee
        trades.append((entry[0], bar, side, abs(qty), entry[1], price, entry[2] + exit_fee, reason))
        qty, side = 0.0, 0

    rows = list(market[["open", "high", "low", "close"]].itertuples(index=False))
    held = [0, *(int(value) for value in target[:-1])]  # what the last close asked for
    for bar, (open_, high, low, close) in enumerate(rows):
        wanted = held[bar]
        if bar and wanted != held[bar - 1]:
            if side:
                close_position(open_ * (1 - side * slip), bar, "signal")
            if wanted:
                price = open_ * (1 + wanted * slip)
                units = cash * settings.position_size / (price * (1 + fee))
                cash -= wanted * units * price + units * price * fee
                qty, side, entry = wanted * units, wanted, (bar, price, units * price * fee)
        if side and settings.stop_loss is not None:
            stop = entry[1] * (1 - side * settings.stop_loss)
            if (side > 0 and low <= stop) or (side < 0 and high >= stop):
                gap = min(stop, open_) if side > 0 else max(stop, open_)
                close_position(gap * (1 - side * slip), bar, "stop_loss")
        if side and settings.take_profit is not None:
            take = entry[1] * (1 + side * settings.take_profit)
            if (side > 0 and high >= take) or (side < 0 and low <= take):
                close_position(
                    max(take, open_) if side > 0 else min(take, open_), bar, "take_profit"
                )
        if side and bar == len(rows) - 1:
            close_position(close * (1 - side * slip), bar, "end")
        equity.append(cash + qty * close)
    return trades, equity


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("account", RANDOM_SETTINGS)
def test_it_matches_a_candle_by_candle_reference(seed: int, account: BacktestSettings) -> None:
    # given a random market of 1 to 150 candles
    size = int(np.random.default_rng(seed).integers(1, 150))
    market, target = random_market(seed, size)

    # when
    result = simulate(market, target, account)
    expected_trades, expected_equity = reference_simulation(market, target, account)

    # then
    columns = ["entry_bar", "exit_bar", "side", "qty", "entry_price", "exit_price", "fee"]
    got = result.trades[[*columns, "exit_reason"]].itertuples(index=False)
    assert len(result.trades) == len(expected_trades)
    for trade, expected in zip(got, expected_trades, strict=True):
        assert tuple(trade)[:3] == expected[:3]
        assert tuple(trade)[3:7] == pytest.approx(expected[3:7], rel=1e-9)
        assert trade.exit_reason == expected[7]
    assert result.equity == pytest.approx(expected_equity, rel=1e-9)
    total_pnl = float(result.trades.pnl.sum())
    assert result.metrics["final_equity"] == pytest.approx(account.initial_cash + total_pnl)
