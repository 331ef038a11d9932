"""The report's breakdowns (``backtests.report``) on hand-made trades, with figures computed by
hand, and once against the engine's own metrics on the real sample (pure: no database)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from backtests import report
from backtests.engine import BacktestSettings
from backtests.report import Period, TradeRow
from backtests.runner import run_backtest
from markets.candle_csv import read_candle_file
from markets.candles import SAMPLE_PATH, SAMPLE_TIMEFRAME
from strategies.registry import active

HOUR = 3_600_000
DAY = 24 * HOUR
PARIS = ZoneInfo("Europe/Paris")


def ms(*parts: int) -> int:
    """An epoch-ms time from UTC parts (year, month, day, hour, minute)."""
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def trade(seq: int, entry: int, exit_: int, pnl: float, **fields: object) -> TradeRow:
    values: dict[str, object] = {
        "side": "long",
        "return_rate": pnl / 1000,
        "fee": 1.0,
        "funding": 0.0,
        "exit_reason": "signal",
    }
    values.update(fields)
    return TradeRow(seq=seq, entry_time=entry, exit_time=exit_, pnl=pnl, **values)  # type: ignore[arg-type]


# Four trades over January to March 2024 (UTC): +100 in January, -55 and +31.5 in February,
# nothing in March.
TRADES = [
    trade(0, ms(2024, 1, 10, 0, 0), ms(2024, 1, 10, 6, 0), 100.0, exit_reason="take_profit"),
    trade(1, ms(2024, 2, 1, 0, 0), ms(2024, 2, 2, 0, 0), -55.0, exit_reason="stop_loss"),
    trade(2, ms(2024, 2, 5, 0, 0), ms(2024, 2, 5, 2, 0), 31.5),
    trade(3, ms(2024, 2, 6, 0, 0), ms(2024, 2, 6, 4, 0), -10.0, return_rate=-0.2),
]
PERIOD = Period(
    start_ms=ms(2024, 1, 1, 0, 0), end_ms=ms(2024, 4, 1, 0, 0), candle_count=0, bar_ms=0
)


def test_monthly_returns_compound_on_the_realised_equity_at_each_months_start() -> None:
    # when
    months = report.monthly_returns(TRADES, initial_cash=1000.0, period=PERIOD, zone=UTC)

    # then every month of the period has a row, March without trades
    assert [row["month"] for row in months] == ["2024-01", "2024-02", "2024-03"]
    assert [row["trades"] for row in months] == [1, 3, 0]
    # January: +100 on 1,000; February: -33.5 on 1,100; March: nothing on 1,066.5
    assert months[0]["return"] == pytest.approx(0.1)
    assert months[1]["profit"] == pytest.approx(-33.5)
    assert months[1]["return"] == pytest.approx(-33.5 / 1100)
    assert months[1]["win_rate"] == pytest.approx(1 / 3)
    assert months[2]["return"] == 0.0
    assert months[2]["start_equity"] == pytest.approx(1066.5)
    assert months[2]["win_rate"] is None
    growth = math.prod(1 + row["return"] for row in months)
    assert growth == pytest.approx(1066.5 / 1000)


def test_months_and_weekdays_are_the_traders_not_utcs() -> None:
    # given a trade closed on Wednesday 31 January 2024 at 23:30 UTC: Thursday 1 February in Paris
    late = [trade(0, ms(2024, 1, 31, 20, 0), ms(2024, 1, 31, 23, 30), 50.0)]
    period = Period(ms(2024, 1, 1, 0, 0), ms(2024, 2, 10, 0, 0), 0, 0)

    # when / then
    in_utc = report.monthly_returns(late, initial_cash=1000.0, period=period, zone=UTC)
    in_paris = report.monthly_returns(late, initial_cash=1000.0, period=period, zone=PARIS)
    assert [row["trades"] for row in in_utc] == [1, 0]
    assert [row["trades"] for row in in_paris] == [0, 1]
    assert [row["trades"] for row in report.weekday_returns(late, zone=UTC)][2:4] == [1, 0]
    assert [row["trades"] for row in report.weekday_returns(late, zone=PARIS)][2:4] == [0, 1]


def test_the_calendar_is_shaded_on_a_scale_centred_on_zero() -> None:
    # given January +10 %, February -3.045 %, March 0
    months = report.monthly_returns(TRADES, initial_cash=1000.0, period=PERIOD, zone=UTC)

    # when
    calendar = report.month_calendar(months)

    # then one row for 2024, April to December outside the period
    (year,) = calendar["years"]
    assert year["year"] == 2024
    cells = year["cells"]
    assert cells[3:] == [None] * 9
    # the largest move (+10 %) is full green, the loss red in proportion, March neutral
    assert cells[0]["shade"] == 1.0
    assert cells[1]["shade"] == pytest.approx((-33.5 / 1100) / 0.1)
    assert cells[1]["shade"] < 0
    assert cells[2]["shade"] == 0.0
    assert year["return"] == pytest.approx(0.0665)


def test_weekday_returns_group_trades_by_their_exit_day() -> None:
    # when (exits: Wed 10 Jan, Fri 2 Feb, Mon 5 Feb, Tue 6 Feb)
    days = report.weekday_returns(TRADES, zone=UTC)

    # then
    assert [day["name"] for day in days][:3] == ["Monday", "Tuesday", "Wednesday"]
    assert [day["trades"] for day in days] == [1, 1, 1, 0, 1, 0, 0]
    assert days[0]["profit"] == pytest.approx(31.5)
    assert days[1]["avg_return"] == pytest.approx(-0.2)
    assert days[2]["win_rate"] == 1.0
    assert days[6]["avg_return"] is None


def test_durations_of_all_trades_winners_and_losers() -> None:
    # when (6 h win, 24 h loss, 2 h win, 4 h loss)
    durations = report.duration_stats(TRADES)

    # then
    assert durations["all"] == {
        "trades": 4,
        "mean": 9 * HOUR,
        "median": 5 * HOUR,
        "min": 2 * HOUR,
        "max": 24 * HOUR,
    }
    assert durations["winners"]["mean"] == 4 * HOUR
    assert durations["losers"]["mean"] == 14 * HOUR
    assert report.duration_stats([])["all"]["mean"] is None


def test_the_exit_reason_table_counts_wins_and_average_profit() -> None:
    # when
    rows = report.exit_reason_table(TRADES)

    # then signal first (2 trades), then the others by name
    assert [row["reason"] for row in rows] == ["signal", "stop_loss", "take_profit"]
    signal = rows[0]
    assert signal["trades"] == 2
    assert signal["win_rate"] == 0.5
    assert signal["avg_profit"] == pytest.approx(10.75)  # (31.5 - 10) / 2
    assert signal["profit"] == pytest.approx(21.5)
    assert rows[1]["win_rate"] == 0.0


def test_streaks_best_and_worst_fees_and_funding() -> None:
    # given win, loss, loss, win, win, win, scratch, loss
    pnls = [5.0, -1.0, -2.0, 3.0, 4.0, 1.0, 0.0, -6.0]
    trades = [trade(i, 0, 1, pnl, fee=0.5, funding=-0.25) for i, pnl in enumerate(pnls)]

    # when
    streaks = report.longest_streaks(trades)
    best, worst = report.best_and_worst(trades)
    breakdown = report.backtest_breakdown(trades, initial_cash=1000.0, period=PERIOD, zone=UTC)

    # then
    assert streaks == {"wins": 3, "losses": 2}
    assert [found.seq if found else None for found in (best, worst)] == [0, 7]
    assert breakdown["fees"] == pytest.approx(4.0)
    assert breakdown["funding"] == pytest.approx(-2.0)
    assert breakdown["best_trade"]["return"] == pytest.approx(0.005)
    # and all of it is JSON as it is
    assert json.loads(json.dumps(breakdown, allow_nan=False)) == breakdown


def test_exposure_counts_the_exit_candle_of_an_exit_inside_it() -> None:
    # given 10 candles of 1 h; a signal trade over 3 candles, a stop hit in its entry's candle
    period = Period(start_ms=0, end_ms=10 * HOUR, candle_count=10, bar_ms=HOUR)
    trades = [
        trade(0, 0, 3 * HOUR, 1.0),
        trade(1, 5 * HOUR, 5 * HOUR, -1.0, exit_reason="stop_loss"),
    ]

    # when / then: 3 + 1 candles of 10
    assert report.exposure(trades, period) == pytest.approx(0.4)
    assert report.exposure([], period) == 0.0


def test_on_the_real_sample_the_breakdown_agrees_with_the_engines_metrics() -> None:
    # given MA Cross 10/30 over the whole shipped BTC/USDT sample (the demo backtest: 218 trades)
    rows = read_candle_file(SAMPLE_PATH, timeframe=SAMPLE_TIMEFRAME).rows
    candles = pd.DataFrame([row._asdict() for row in rows]).astype({"open": float})
    candles = candles.astype({name: float for name in ("high", "low", "close", "volume")})
    strategy = active().create("ma_cross", {"fast": 10, "slow": 30, "ma": "sma"})
    result = run_backtest(
        candles, strategy, settings=BacktestSettings(initial_cash=10_000.0, fee_rate=0.001)
    )
    trades = [
        TradeRow(
            seq=seq,
            side="long",
            entry_time=int(row["entry_time"]),
            exit_time=int(row["exit_time"]),
            pnl=float(row["pnl"]),
            return_rate=float(row["return"]),
            fee=float(row["fee"]),
            funding=float(row["funding"]),
            exit_reason=str(row["exit_reason"]),
        )
        for seq, row in enumerate(result.trades.to_dict("records"))
    ]
    step = 5 * 60_000
    first, last = int(candles.open_time.iloc[0]), int(candles.open_time.iloc[-1])
    period = Period(first, last + step, len(candles), step)

    # when
    breakdown = report.backtest_breakdown(trades, initial_cash=10_000.0, period=period, zone=UTC)

    # then
    metrics = result.metrics
    assert len(trades) == metrics["trade_count"] == 218
    growth = math.prod(1 + month["return"] for month in breakdown["months"])
    assert growth - 1 == pytest.approx(metrics["total_return"], abs=1e-9)
    assert breakdown["exposure"] == pytest.approx(metrics["exposure"])
    assert sum(row["trades"] for row in breakdown["exit_reasons"]) == 218
    assert sum(day["trades"] for day in breakdown["weekdays"]) == 218


def test_chart_markers_count_the_entries_and_exits_of_each_bar() -> None:
    # given bars of 1 h from 0, and three trades: two entered in bar 0, exits in bars 1 and 2
    trades = [
        trade(0, 10 * 60_000, 70 * 60_000, 5.0),  # bar 0 -> bar 1, a win
        trade(1, 20 * 60_000, 80 * 60_000, -1.0),  # bar 0 -> bar 1, a loss
        trade(2, 30 * 60_000, 150 * 60_000, -2.0, side="short"),  # bar 0 -> bar 2
    ]

    # when
    markers = report.bar_markers(trades, 0, HOUR)

    # then one marker per bar, kind, side and outcome, with its count, in time order
    assert markers == [
        {"time": 0, "kind": "entry", "side": "long", "count": 2},
        {"time": 0, "kind": "entry", "side": "short", "count": 1},
        {"time": HOUR, "kind": "exit", "side": "long", "count": 1, "won": False},
        {"time": HOUR, "kind": "exit", "side": "long", "count": 1, "won": True},
        {"time": 2 * HOUR, "kind": "exit", "side": "short", "count": 1, "won": False},
    ]
