"""The backtest simulator on a perpetual swap: leverage, funding, liquidation and mark prices, on
hand-made candles (pure numpy/pandas, no database), and the issue's "what must hold" on the
shipped XRP/USDT:USDT perp data.

The market is six candles one minute apart. Unless a test says otherwise the account starts with
10,000, pays no fee, and holds a long from candle 2's open (100) to candle 5's open (103).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests.engine import TRADE_COLUMNS, BacktestSettings, simulate
from backtests.engine_perp import liquidation_levels
from backtests.metrics import METRIC_KEYS
from backtests.runner import run_backtest
from markets import perp
from strategies import registry

MINUTE = 60_000
T0 = 1_700_000_000_000
#          open   high   low  close
MARKET = [
    (100.0, 101.0, 99.0, 100.0),  # 0
    (100.0, 101.0, 99.0, 100.0),  # 1: the signal here fills at candle 2's open
    (100.0, 102.0, 99.0, 101.0),  # 2: entry
    (101.0, 103.0, 100.0, 102.0),  # 3
    (102.0, 104.0, 101.0, 103.0),  # 4
    (103.0, 104.0, 102.0, 102.5),  # 5: signal exit at its open
]
LONG = np.array([0, 1, 1, 1, 0, 0])
SHORT = -LONG
DATA = Path(__file__).resolve().parents[2] / "markets" / "data" / "perp"


def candles(rows: list[tuple[float, float, float, float]] = MARKET) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["open", "high", "low", "close"])
    table.insert(0, "open_time", T0 + MINUTE * np.arange(len(rows), dtype=np.int64))
    return table


def with_candle(index: int, row: tuple[float, float, float, float]) -> pd.DataFrame:
    rows = list(MARKET)
    rows[index] = row
    return candles(rows)


def settings(**changes: Any) -> BacktestSettings:
    return BacktestSettings(**{"initial_cash": 10_000.0, "fee_rate": 0.0, "perp": True, **changes})


def only_trade(result: Any) -> dict[str, Any]:
    assert len(result.trades) == 1
    return dict(result.trades.iloc[0])


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "wording"),
    [
        ({"leverage": 0}, "leverage must be a whole number from 1 to 125"),
        ({"leverage": 126}, "leverage must be a whole number from 1 to 125"),
        ({"leverage": 2.5}, "leverage must be a whole number from 1 to 125"),
        ({"leverage": True}, "leverage must be a number"),
        ({"margin_mode": "cross"}, "cross margin is not supported yet"),
        ({"margin_mode": "portfolio"}, "margin_mode must be 'isolated'"),
        ({"maintenance_margin_rate": 1.0}, "maintenance_margin_rate must be at least 0"),
        ({"maintenance_margin_rate": -0.1}, "maintenance_margin_rate must be at least 0"),
        ({"leverage": 125, "maintenance_margin_rate": 0.008}, "liquidated at once"),
        ({"leverage": 200, "maintenance_margin_rate": 0.005}, "from 1 to 125"),
        ({"perp": "yes"}, "perp must be true or false"),
        ({"perp": False, "leverage": 3}, "leverage above 1 needs a perpetual-swap market"),
    ],
)
def test_bad_perp_settings_are_refused_with_a_clear_message(
    changes: dict[str, Any], wording: str
) -> None:
    with pytest.raises(ValueError, match=wording):
        settings(**changes)


def test_the_defaults_are_spot_and_a_whole_leverage_is_kept_as_a_float() -> None:
    default = BacktestSettings()
    assert (default.leverage, default.margin_mode, default.perp) == (1.0, "isolated", False)
    assert default.maintenance_margin_rate == float(perp.DEFAULT_TIERS[0].maintenance_margin_rate)
    assert settings(leverage=3).leverage == 3.0


@pytest.mark.parametrize("argument", ["funding", "mark"])
def test_a_spot_run_refuses_funding_and_mark_prices(argument: str) -> None:
    table = {"time": [T0], "rate": [0.001]} if argument == "funding" else candles()
    with pytest.raises(ValueError, match="need a perpetual-swap market"):
        simulate(candles(), LONG, BacktestSettings(), **{argument: table})


# --- sizing and results ----------------------------------------------------------------------


def test_leverage_sizes_the_margin_plus_the_entry_fee_to_the_cash() -> None:
    # when a long at leverage 3 with a 0.1 % fee
    result = simulate(candles(), LONG, settings(leverage=3, fee_rate=0.001))

    # then qty = cash / (E * (1/L + fee)), and the return is on the margin
    trade = only_trade(result)
    qty = 10_000 / (100 * (1 / 3 + 0.001))
    assert trade["qty"] == pytest.approx(qty, rel=1e-12)
    assert trade["qty"] * 100 / 3 + trade["qty"] * 100 * 0.001 == pytest.approx(10_000)
    fee = qty * 100 * 0.001 + qty * 103 * 0.001
    assert trade["fee"] == pytest.approx(fee, rel=1e-12)
    assert trade["pnl"] == pytest.approx(qty * 3 - fee, rel=1e-12)
    assert trade["return"] == pytest.approx((qty * 3 - fee) / (qty * 100 / 3), rel=1e-12)
    assert trade["leverage"] == 3.0
    assert trade["funding"] == 0.0
    assert result.metrics["final_equity"] == pytest.approx(10_000 + trade["pnl"], rel=1e-12)
    # the equity is the cash plus the unrealised pnl, not the notional
    assert result.equity[2] == pytest.approx(10_000 - qty * 0.1 + qty * 1, rel=1e-12)


def test_a_perp_run_at_leverage_1_without_funding_is_the_spot_run() -> None:
    for target in (LONG, SHORT):
        spot = simulate(candles(), target, BacktestSettings(initial_cash=10_000, fee_rate=0.001))
        swap = simulate(candles(), target, settings(fee_rate=0.001))
        pd.testing.assert_frame_equal(spot.trades, swap.trades)
        np.testing.assert_array_equal(spot.equity, swap.equity)


def test_results_carry_leverage_funding_and_the_perp_metrics() -> None:
    result = simulate(candles(), LONG, settings(leverage=5))
    assert list(result.trades.columns) == list(TRADE_COLUMNS)
    assert TRADE_COLUMNS[-2:] == ("leverage", "funding")
    assert list(result.metrics) == list(METRIC_KEYS)
    assert result.metrics["funding_fees"] == 0.0
    assert result.metrics["liquidations"] == 0
    trade = result.to_dict()["trades"][0]
    assert (trade["leverage"], trade["funding"]) == (5.0, 0.0)
    assert result.to_dict()["settings"]["perp"] is True


# --- funding ---------------------------------------------------------------------------------


def funding_table(*rows: tuple[int, float, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["time", "rate", "mark_price"])


BOUNDARY_FUNDING = funding_table(
    (T0 + 2 * MINUTE, 0.01, 100.0),  # at the entry time: not paid
    (T0 + 3 * MINUTE, 0.001, 110.0),  # paid at the given mark
    (T0 + 4 * MINUTE + 30_000, 0.001, np.nan),  # inside candle 4: at its close, 103
    (T0 + 5 * MINUTE, 0.002, np.nan),  # at the exit time: paid, at candle 5's open, 103
    (T0 + 6 * MINUTE, 0.05, 100.0),  # after the last candle: not in the run
)


@pytest.mark.parametrize(("target", "sign"), [(LONG, 1), (SHORT, -1)])
def test_funding_is_paid_while_open_from_after_the_entry_to_the_exit_time(
    target: np.ndarray, sign: int
) -> None:
    # when a position is held from candle 2's open to candle 5's open
    result = simulate(candles(), target, settings(leverage=2), funding=BOUNDARY_FUNDING)

    # then it pays -side * qty * mark * rate at t for entry_time < t <= exit_time
    trade = only_trade(result)
    qty = trade["qty"]
    assert qty == pytest.approx(200.0)  # 10,000 / (100 / 2)
    expected = -sign * qty * (110 * 0.001 + 103 * 0.001 + 103 * 0.002)
    assert trade["funding"] == pytest.approx(expected, rel=1e-12)
    assert trade["pnl"] == pytest.approx(sign * qty * 3 + expected, rel=1e-12)
    assert result.metrics["funding_fees"] == pytest.approx(expected, rel=1e-12)
    assert result.metrics["final_equity"] == pytest.approx(10_000 + trade["pnl"], rel=1e-12)
    # the equity steps down (a long) at each funding, from the close of its candle
    unrealised = sign * qty * (np.array([101.0, 102.0, 103.0]) - 100)
    paid = -sign * qty * np.cumsum([0, 110 * 0.001, 103 * 0.001])
    np.testing.assert_allclose(result.equity[2:5], 10_000 + unrealised + paid, rtol=1e-12)
    assert result.equity[5] == pytest.approx(10_000 + trade["pnl"], rel=1e-12)


def test_one_funding_matches_markets_perp_funding_payment() -> None:
    funding = funding_table((T0 + 3 * MINUTE, -0.00219334, 101.5))
    for target, side in ((LONG, "long"), (SHORT, "short")):
        trade = only_trade(simulate(candles(), target, settings(leverage=7), funding=funding))
        expected = perp.funding_payment(
            side, Decimal(repr(float(trade["qty"]))), Decimal("101.5"), Decimal("-0.00219334")
        )
        assert trade["funding"] == pytest.approx(float(expected), rel=1e-12)
        assert (trade["funding"] > 0) == (side == "long")  # a negative rate: shorts pay


def test_the_funding_mark_falls_back_to_the_mark_candle_then_the_trade_open() -> None:
    # given funding rows without a mark price at candles 3 and 4, a mark candle only at 3
    funding = pd.DataFrame({"time": [T0 + 3 * MINUTE, T0 + 4 * MINUTE], "rate": [0.001, 0.001]})
    mark = candles().iloc[[3]].assign(open=99.0, high=104.0, low=98.0, close=101.0)

    # when
    trade = only_trade(simulate(candles(), LONG, settings(), funding=funding, mark=mark))

    # then the first is at the mark candle's open (99), the second at the trade open (102)
    assert trade["funding"] == pytest.approx(-trade["qty"] * (99 + 102) * 0.001, rel=1e-12)


@pytest.mark.parametrize(
    ("table", "wording"),
    [
        ({"rate": [0.001]}, "funding rows lack the column time"),
        ({"time": [T0]}, "funding rows lack the column rate"),
        ({"time": [T0 + MINUTE, T0], "rate": [0.1, 0.1]}, "strictly ascending"),
        ({"time": [T0], "rate": [np.inf]}, "funding rate must be finite"),
        ({"time": [T0], "rate": [0.1], "mark_price": [-1.0]}, "mark_price must be positive"),
    ],
)
def test_bad_funding_is_refused(table: dict[str, list[Any]], wording: str) -> None:
    with pytest.raises(ValueError, match=wording):
        simulate(candles(), LONG, settings(), funding=table)


# --- liquidation -----------------------------------------------------------------------------


def test_a_long_is_liquidated_at_its_liquidation_price_with_the_taker_fee() -> None:
    # given a long at leverage 10 (liquidation 100 * 0.9 / 0.995 = 90.45) and candle 3 down to 90
    market = with_candle(3, (101.0, 103.0, 90.0, 95.0))

    # when
    result = simulate(market, LONG, settings(leverage=10, fee_rate=0.001))

    # then it is closed in candle 3 at that price, with the fee, and the signal is not re-entered
    trade = only_trade(result)
    liquidation = 100 * (1 - 1 / 10) / (1 - 0.005)
    assert trade["exit_reason"] == "liquidation"
    assert trade["exit_bar"] == 3
    assert trade["exit_time"] == T0 + 3 * MINUTE
    assert trade["exit_price"] == pytest.approx(liquidation, rel=1e-15)
    qty = trade["qty"]
    assert trade["fee"] == pytest.approx(qty * (100 + liquidation) * 0.001, rel=1e-12)
    assert trade["pnl"] == pytest.approx(qty * (liquidation - 100) - trade["fee"], rel=1e-12)
    assert result.metrics["liquidations"] == 1
    assert result.equity[3:] == pytest.approx([10_000 + trade["pnl"]] * 3)


def test_liquidation_levels_equal_markets_perp_liquidation_price() -> None:
    rng = np.random.default_rng(16)
    side = rng.choice([-1.0, 1.0], 200)
    entry = rng.uniform(0.01, 100_000, 200)
    for leverage in (1, 2, 3, 20, 50, 100, 125):
        levels = liquidation_levels(side, entry, float(leverage), 0.005)
        expected = [
            float(
                perp.liquidation_price(
                    "long" if s > 0 else "short", Decimal(repr(float(e))), Decimal(1), leverage
                )
            )
            for s, e in zip(side, entry, strict=True)
        ]
        np.testing.assert_allclose(levels, expected, rtol=1e-14)


def test_a_long_at_leverage_1_is_never_liquidated_a_short_is_at_2e_over_1_plus_m() -> None:
    crash = with_candle(3, (101.0, 103.0, 0.01, 95.0))
    squeeze = with_candle(3, (101.0, 200.0, 100.0, 150.0))

    long_trade = only_trade(simulate(crash, LONG, settings()))
    short_trade = only_trade(simulate(squeeze, SHORT, settings()))

    assert long_trade["exit_reason"] == "signal"
    assert short_trade["exit_reason"] == "liquidation"
    assert short_trade["exit_price"] == pytest.approx(200 / 1.005, rel=1e-15)


def test_a_short_is_liquidated_on_the_high_in_its_entry_candle() -> None:
    # given a short at leverage 20: liquidation 100 * 1.05 / 1.005 = 104.48; candle 2 up to 105
    market = with_candle(2, (100.0, 105.0, 99.0, 101.0))

    trade = only_trade(simulate(market, SHORT, settings(leverage=20)))

    assert (trade["exit_reason"], trade["exit_bar"]) == ("liquidation", 2)
    assert trade["exit_price"] == pytest.approx(105 / 1.005, rel=1e-15)


@pytest.mark.parametrize(
    ("stop_loss", "reason", "price"),
    [(0.05, "stop_loss", 95.0), (0.12, "liquidation", 90 / 0.995)],
)
def test_stop_and_liquidation_in_one_candle_the_one_nearer_the_entry_wins(
    stop_loss: float, reason: str, price: float
) -> None:
    market = with_candle(3, (101.0, 103.0, 85.0, 95.0))  # reaches the stop and the liquidation

    trade = only_trade(simulate(market, LONG, settings(leverage=10, stop_loss=stop_loss)))

    assert (trade["exit_reason"], trade["exit_bar"]) == (reason, 3)
    assert trade["exit_price"] == pytest.approx(price, rel=1e-15)


def test_a_liquidation_beats_a_take_profit_in_the_same_candle() -> None:
    market = with_candle(3, (101.0, 120.0, 85.0, 95.0))
    trade = only_trade(simulate(market, LONG, settings(leverage=10, take_profit=0.1)))
    assert trade["exit_reason"] == "liquidation"


def test_the_liquidation_fill_has_no_slippage() -> None:
    market = with_candle(3, (101.0, 103.0, 85.0, 95.0))
    trade = only_trade(simulate(market, LONG, settings(leverage=10, slippage_bps=10)))
    entry = 100 * 1.001
    assert trade["entry_price"] == pytest.approx(entry)
    assert trade["exit_price"] == pytest.approx(entry * 0.9 / 0.995, rel=1e-15)


def test_a_bust_after_funding_stops_trading() -> None:
    # given a short whose funding takes more than the cash
    funding = funding_table((T0 + 3 * MINUTE, -1.5, 100.0))
    target = np.array([0, -1, -1, 0, 1, 0])

    result = simulate(candles(), target, settings(), funding=funding)

    assert len(result.trades) == 1
    assert result.equity[-1] == pytest.approx(10_000 + result.trades["pnl"].sum())
    assert result.equity[-1] <= 0


# --- mark candles ----------------------------------------------------------------------------


def mark_candles(**changes: tuple[float, float, float, float]) -> pd.DataFrame:
    """Mark candles equal to the trade candles, but for the rows named ``at<index>``."""
    rows = list(MARKET)
    for name, row in changes.items():
        rows[int(name.removeprefix("at"))] = row
    return candles(rows)


def test_liquidation_is_checked_on_the_mark_candle() -> None:
    # given trade candle 3 down to 95 only, its mark candle down to 90
    mark = mark_candles(at3=(101.0, 103.0, 90.0, 95.0))
    trade = only_trade(simulate(candles(), LONG, settings(leverage=10), mark=mark))
    assert (trade["exit_reason"], trade["exit_bar"]) == ("liquidation", 3)

    # and a trade candle's wick the mark did not make does not liquidate
    wick = with_candle(3, (101.0, 103.0, 85.0, 95.0))
    trade = only_trade(simulate(wick, LONG, settings(leverage=10), mark=mark_candles()))
    assert trade["exit_reason"] == "signal"


def test_a_candle_without_a_mark_row_uses_its_own_prices() -> None:
    wick = with_candle(3, (101.0, 103.0, 85.0, 95.0))
    mark = mark_candles().drop(index=3)
    trade = only_trade(simulate(wick, LONG, settings(leverage=10), mark=mark))
    assert trade["exit_reason"] == "liquidation"


def test_stop_and_take_profit_trigger_on_the_mark_and_fill_at_the_level_or_mark_open() -> None:
    # a stop at 97: the mark reaches it in candle 3, the trade candle does not
    stop = mark_candles(at3=(101.0, 103.0, 96.0, 99.0))
    trade = only_trade(simulate(candles(), LONG, settings(stop_loss=0.03), mark=stop))
    assert (trade["exit_reason"], trade["exit_bar"]) == ("stop_loss", 3)
    assert trade["exit_price"] == pytest.approx(97.0)
    # a mark opening beyond the stop: filled at the mark's open
    gap = mark_candles(at3=(96.5, 103.0, 96.0, 99.0))
    trade = only_trade(simulate(candles(), LONG, settings(stop_loss=0.03), mark=gap))
    assert trade["exit_price"] == pytest.approx(96.5)
    # a take-profit at 103.5 reached by the mark only
    take = mark_candles(at3=(101.0, 104.0, 100.0, 102.0))
    trade = only_trade(simulate(candles(), LONG, settings(take_profit=0.035), mark=take))
    assert (trade["exit_reason"], trade["exit_price"]) == ("take_profit", pytest.approx(103.5))


def test_signals_still_fill_at_the_trade_open_with_mark_candles() -> None:
    mark = mark_candles(at2=(90.0, 102.0, 89.0, 101.0), at5=(110.0, 111.0, 109.0, 110.0))
    trade = only_trade(simulate(candles(), LONG, settings(), mark=mark))
    assert (trade["entry_price"], trade["exit_price"]) == (100.0, 103.0)


def test_mark_candles_of_another_timeframe_are_refused() -> None:
    hourly = pd.DataFrame(
        {"open_time": [T0, T0 + 60 * MINUTE], "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}
    )
    with pytest.raises(ValueError, match="timeframe"):
        simulate(candles(), LONG, settings(), mark=hourly)


# --- what must hold, on the shipped perp data -------------------------------------------------


@pytest.fixture(scope="module")
def xrp() -> tuple[pd.DataFrame, pd.DataFrame]:
    trades = pd.read_csv(DATA / "XRP_USDT_USDT-5m-futures.csv")
    rates = pd.read_csv(DATA / "XRP_USDT_USDT-8h-funding_rate.csv")
    interval = 8 * 3600 * 1000
    funding = pd.DataFrame(
        {"time": rates["timestamp"] // interval * interval, "rate": rates["funding_rate"]}
    )
    return trades.rename(columns={"timestamp": "open_time"}), funding


@pytest.mark.parametrize("leverage", [3, 50])
def test_ma_cross_with_shorts_on_the_perp_sample_pays_funding_and_liquidates_at_50(
    xrp: tuple[pd.DataFrame, pd.DataFrame], leverage: int
) -> None:
    # given ma_cross long and short on XRP/USDT:USDT with its funding
    candles, funding = xrp
    strategy = registry.active().create("ma_cross", {"allow_short": True})
    run = BacktestSettings(fee_rate=0.0006, leverage=leverage, perp=True)

    # when
    result = run_backtest(candles, strategy, run, funding=funding)

    # then funding was paid, each trade has its funding and leverage; at 50, liquidations
    trades = result.trades
    assert result.metrics["funding_fees"] != 0
    assert result.metrics["funding_fees"] == pytest.approx(trades["funding"].sum())
    assert trades["funding"].notna().all()
    assert (trades["funding"] != 0).any()
    assert (trades["leverage"] == leverage).all()
    assert set(trades["side"]) == {-1, 1}
    assert result.metrics["final_equity"] == pytest.approx(
        result.settings.initial_cash + trades["pnl"].sum(), rel=1e-9
    )
    liquidated = trades["exit_reason"] == "liquidation"
    assert result.metrics["liquidations"] == liquidated.sum()
    assert liquidated.any() == (leverage == 50)
