"""Backtest metrics on hand-made equity curves and trade lists (pure numpy, no database)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from backtests import metrics
from backtests.metrics import METRIC_KEYS, YEAR_MS, compute_metrics

DAY = 86_400_000
SECOND = 1_000


def test_it_measures_the_deepest_drawdown_and_the_longest_time_under_water() -> None:
    # given a peak of 120 at t=1s, a trough of 90, a new high of 130 at t=4s, then 125 to the end
    equity = [100, 120, 90, 110, 130, 125]
    times = np.arange(6) * SECOND

    # when
    deepest = metrics.max_drawdown(equity)
    longest = metrics.max_drawdown_duration(equity, times)

    # then 90 / 120 - 1 = -25 %; under water from t=1s to t=4s (3 s), then 1 s to the end
    assert deepest == pytest.approx(-0.25)
    assert longest == 3 * SECOND


def test_it_counts_an_unrecovered_drawdown_to_the_end() -> None:
    # given a fall from 100 at t=0 that never comes back
    equity = [100, 80, 90, 95]

    # when / then
    assert metrics.max_drawdown(equity) == pytest.approx(-0.2)
    assert metrics.max_drawdown_duration(equity, np.arange(4) * SECOND) == 3 * SECOND


def test_it_reports_no_drawdown_for_a_curve_that_never_falls() -> None:
    # given a flat stretch (equal to the peak is not under water) and a rise
    equity = [100, 100, 101]

    # when / then
    assert metrics.max_drawdown(equity) == 0.0
    assert metrics.max_drawdown_duration(equity, np.arange(3) * SECOND) == 0


def test_it_computes_win_rate_profit_factor_and_expectancy() -> None:
    # given two winners (100, 30), two losers (-50, -20) and a scratch
    pnl = [100.0, -50.0, 30.0, -20.0, 0.0]

    # when / then
    assert metrics.win_rate(pnl) == pytest.approx(0.4)  # 2 of 5
    assert metrics.profit_factor(pnl) == pytest.approx(130 / 70)
    assert metrics.mean_or_none(pnl) == pytest.approx(12.0)  # 60 / 5


def test_it_gives_an_infinite_profit_factor_without_losses_and_none_without_trades() -> None:
    assert metrics.profit_factor([10.0, 5.0]) == math.inf
    assert metrics.profit_factor([]) is None
    assert metrics.profit_factor([0.0]) is None
    assert metrics.win_rate([]) is None


def test_it_annualises_sharpe_and_sortino_by_the_candle_spacing() -> None:
    # given daily candles returning +10 %, -10 %, +10 %
    equity = [100.0, 110.0, 99.0, 108.9]
    returns = metrics.period_returns(equity)
    per_year = metrics.candles_per_year(np.arange(4) * DAY)

    # when
    sharpe = metrics.sharpe(returns, per_year)
    sortino = metrics.sortino(returns, per_year)

    # then mean 1/30, sample std 0.2/√3, downside deviation √(0.01 / 3)
    assert per_year == pytest.approx(365.25)
    assert returns == pytest.approx([0.1, -0.1, 0.1])
    assert sharpe == pytest.approx(1 / (2 * math.sqrt(3)) * math.sqrt(365.25))
    assert sortino == pytest.approx(1 / math.sqrt(3) * math.sqrt(365.25))


def test_it_has_no_sharpe_for_a_constant_return_series() -> None:
    # given 1 % every day: the returns do not vary (beyond float rounding)
    equity = 100 * 1.01 ** np.arange(50)
    returns = metrics.period_returns(equity)

    # when / then
    assert returns.std() > 0  # rounding noise that must not become a huge Sharpe
    assert metrics.sharpe(returns, 365.25) is None
    assert metrics.sortino(returns, 365.25) is None  # and no losing day either
    assert metrics.sharpe(returns[:1], 365.25) is None  # one return has no spread


def test_it_computes_cagr_over_exactly_one_year() -> None:
    # given 4 candles a quarter of a year apart: they cover exactly one year
    quarter = YEAR_MS / 4
    times = (np.arange(4) * quarter).astype(np.int64)
    equity = [1_000, 1_050, 1_100, 1_210]

    # when / then
    assert metrics.cagr(equity, 1_000, times) == pytest.approx(0.21)
    assert metrics.cagr(equity, 1_000, times * 2) == pytest.approx(0.1)  # two years: √1.21 - 1
    assert metrics.cagr([1_000, 0], 1_000, times[:2]) == -1.0
    assert metrics.cagr([1_000], 1_000, times[:1]) is None  # one candle: no spacing
    # doubling in two one-minute candles compounds beyond any float
    assert metrics.cagr([1_000, 2_000], 1_000, [0, 60_000]) == math.inf


def test_it_gathers_json_safe_metrics() -> None:
    # given one winning trade over 4 daily candles, with a 10 % dip on the way
    times = np.arange(4) * DAY
    equity = [1_000.0, 1_100.0, 990.0, 1_200.0]

    # when
    result = compute_metrics(
        times=times,
        equity=equity,
        close=[10.0, 11.0, 9.9, 12.5],
        initial_cash=1_000,
        trade_pnl=[200.0],
        trade_return=[0.2],
        bars_in_market=3,
    )

    # then
    assert list(result) == list(METRIC_KEYS)
    assert result["total_return"] == pytest.approx(0.2)
    assert result["cagr"] == pytest.approx(1.2 ** (365.25 / 4) - 1)  # 4 days compounded
    assert result["max_drawdown"] == pytest.approx(-0.1)  # 990 / 1 100 - 1
    assert result["max_drawdown_duration"] == 2 * DAY  # day 1 to the new high on day 3
    assert result["calmar"] == pytest.approx(result["cagr"] / 0.1)
    assert result["profit_factor"] is None  # no losing trade: infinite, not JSON
    assert result["win_rate"] == 1.0
    assert result["expectancy"] == result["avg_trade_pnl"] == pytest.approx(200.0)
    assert result["avg_trade_return"] == pytest.approx(0.2)
    assert result["exposure"] == pytest.approx(0.75)
    assert result["trade_count"] == 1
    assert result["final_equity"] == 1_200.0
    assert result["buy_and_hold_return"] == pytest.approx(0.25)
    json.dumps(result, allow_nan=False)


def test_it_reports_none_for_metrics_of_an_idle_single_candle() -> None:
    # when
    result = compute_metrics(
        times=[0],
        equity=[500.0],
        close=[3.0],
        initial_cash=500,
        trade_pnl=[],
        trade_return=[],
        bars_in_market=0,
    )

    # then
    assert result["total_return"] == 0.0
    assert result["max_drawdown"] == 0.0
    assert result["max_drawdown_duration"] == 0
    for key in ("cagr", "sharpe", "sortino", "calmar", "win_rate", "profit_factor", "expectancy"):
        assert result[key] is None
    assert result["trade_count"] == 0
