"""The walk-forward's arithmetic (``backtests.walk_forward``): windows, an out-of-sample run
after its history, compounding stitching and the overfitting ratio, on numbers checked by
hand."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from backtests.engine import BacktestSettings, simulate
from backtests.metrics import compute_metrics
from backtests.walk_forward import (
    Piece,
    annualised_return,
    days_needed,
    in_sample_annualised,
    make_windows,
    out_of_sample_run,
    overfitting_ratio,
    stitch,
    thinned,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR_MS = 3_600_000


def day(n: float) -> datetime:
    return START + n * DAY


# --- windows -----------------------------------------------------------------------------------


def test_rolling_windows_move_by_the_out_of_sample_days():
    windows = make_windows(START, in_sample_days=4, out_of_sample_days=2, count=3, anchored=False)

    assert [(w.in_sample_start, w.in_sample_end) for w in windows] == [
        (day(0), day(4)),
        (day(2), day(6)),
        (day(4), day(8)),
    ]
    assert [(w.out_of_sample_start, w.out_of_sample_end) for w in windows] == [
        (day(4), day(6)),
        (day(6), day(8)),
        (day(8), day(10)),
    ]
    assert [w.index for w in windows] == [0, 1, 2]
    assert {w.in_sample_days for w in windows} == {4.0}


def test_anchored_windows_all_start_at_the_start_and_grow():
    windows = make_windows(START, in_sample_days=4, out_of_sample_days=2, count=3, anchored=True)

    assert [(w.in_sample_start, w.in_sample_end) for w in windows] == [
        (day(0), day(4)),
        (day(0), day(6)),
        (day(0), day(8)),
    ]
    assert [w.in_sample_days for w in windows] == [4.0, 6.0, 8.0]
    assert windows[-1].out_of_sample_end == day(10)


def test_out_of_sample_periods_follow_each_other_to_the_days_needed():
    for anchored in (False, True):
        windows = make_windows(
            START, in_sample_days=30, out_of_sample_days=7, count=5, anchored=anchored
        )
        for before, after in itertools.pairwise(windows):
            assert before.out_of_sample_end == after.out_of_sample_start
        for window in windows:
            assert window.in_sample_end == window.out_of_sample_start
        needed = days_needed(in_sample_days=30, out_of_sample_days=7, count=5)
        assert needed == 65
        assert windows[-1].out_of_sample_end == day(needed)


# --- the out-of-sample run ---------------------------------------------------------------------


def candles(closes: list[float]) -> pd.DataFrame:
    close = np.asarray(closes, dtype=float)
    return pd.DataFrame(
        {
            "open_time": np.arange(close.size, dtype=np.int64) * HOUR_MS,
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": np.ones(close.size),
        }
    )


class AboveFirst:
    """Long while the close is above the first close it was given: its signal depends on
    history, so a run with and without the history before the window differ."""

    def positions(self, frame: pd.DataFrame) -> pd.Series:
        return (frame["close"] > frame["close"].iloc[0]).astype(float)


SETTINGS = BacktestSettings(initial_cash=1000.0, fee_rate=0.0)


def test_the_out_of_sample_run_trades_only_its_window_on_signals_from_all_the_history():
    # given: history 10, 10, 10 then the window 12, 12, 15 (above the history's first close)
    frame = candles([10, 10, 10, 12, 12, 15])

    # when
    result = out_of_sample_run(frame, 3, AboveFirst(), SETTINGS)

    # then: the window's candles only, long from the second one's open (12) to the end (15)
    assert result.times.tolist() == [3 * HOUR_MS, 4 * HOUR_MS, 5 * HOUR_MS]
    assert result.equity[0] == 1000.0
    assert result.equity[-1] == pytest.approx(1000.0 * 15 / 12)
    assert len(result.trades) == 1
    # without the history the strategy would compare with 12 and enter only at the last candle
    alone = simulate(frame.iloc[3:].reset_index(drop=True), [0, 0, 1], SETTINGS)
    assert alone.equity[-1] == 1000.0


def test_an_out_of_sample_period_without_candles_is_refused():
    with pytest.raises(ValueError, match="no candle"):
        out_of_sample_run(candles([10, 11]), 2, AboveFirst(), SETTINGS)


# --- stitching ---------------------------------------------------------------------------------


def piece(start_hour: int, equity: list[float], pnl: list[float], bars: int = 0) -> Piece:
    values = np.asarray(equity, dtype=float)
    return Piece(
        times=(np.arange(values.size, dtype=np.int64) + start_hour) * HOUR_MS,
        equity=values,
        close=np.linspace(100, 110, values.size),
        trade_pnl=np.asarray(pnl, dtype=float),
        trade_return=np.asarray([p / 1000 for p in pnl], dtype=float),
        trade_funding=np.zeros(len(pnl)),
        bars_in_market=bars,
        liquidations=0,
    )


def test_stitching_compounds_each_window_from_where_the_last_ended():
    # given: +10 % then -5 % then +20 %, each window in an account of its own starting at 1000
    pieces = [
        piece(0, [1000, 1050, 1100], [100], bars=2),
        piece(3, [1000, 980, 950], [-50], bars=1),
        piece(6, [1000, 1100, 1200], [200], bars=2),
    ]

    # when
    stitched = stitch(pieces, 1000.0)

    # then: 1000 → 1100 → 1045 → 1254
    assert stitched.scales == pytest.approx([1.0, 1.1, 1.045])
    assert stitched.equity.tolist() == pytest.approx(
        [1000, 1050, 1100, 1100, 1078, 1045, 1045, 1149.5, 1254]
    )
    assert stitched.times.tolist() == [h * HOUR_MS for h in range(9)]
    metrics = stitched.metrics
    assert metrics["total_return"] == pytest.approx(1.1 * 0.95 * 1.2 - 1)
    assert metrics["final_equity"] == pytest.approx(1254)
    assert metrics["trade_count"] == 3
    assert metrics["exposure"] == pytest.approx(5 / 9)
    assert metrics["win_rate"] == pytest.approx(2 / 3)
    # the pnl in the stitched account's money: 100, -50 × 1.1, 200 × 1.045
    assert metrics["profit_factor"] == pytest.approx((100 + 209) / 55)
    assert metrics["max_drawdown"] == pytest.approx(1045 / 1100 - 1)


def test_stitched_metrics_are_those_of_one_account_over_the_whole_curve():
    pieces = [piece(0, [1000, 1200], [200], bars=1), piece(2, [1000, 900], [-100], bars=1)]

    stitched = stitch(pieces, 1000.0)

    expected = compute_metrics(
        times=stitched.times,
        equity=[1000, 1200, 1200, 1080],
        close=np.concatenate([p.close for p in pieces]),
        initial_cash=1000.0,
        trade_pnl=[200, -120],
        trade_return=[0.2, -0.1],
        bars_in_market=2,
    )
    assert stitched.metrics == pytest.approx(expected)


def test_an_account_that_went_bust_stays_at_zero():
    pieces = [piece(0, [1000, 0], [-1000]), piece(2, [1000, 1500], [500])]

    stitched = stitch(pieces, 1000.0)

    assert stitched.equity.tolist() == [1000, 0, 0, 0]
    assert stitched.metrics["total_return"] == -1.0


def test_nothing_to_stitch_is_an_error():
    with pytest.raises(ValueError, match="no window"):
        stitch([], 1000.0)


def test_a_curve_is_thinned_keeping_its_first_and_last_points():
    times = np.arange(10_000, dtype=np.int64)
    values = times.astype(float) * 2

    points = thinned(times, values, 100)

    assert len(points) == 100
    assert points[0] == [0, 0.0]
    assert points[-1] == [9999, 19998.0]
    assert thinned(times[:5], values[:5], 100) == [[t, 2.0 * t] for t in range(5)]


# --- the overfitting ratio ---------------------------------------------------------------------


def test_returns_are_annualised_simply():
    assert annualised_return(0.02, 4) == pytest.approx(0.02 * 365.25 / 4)
    assert annualised_return(-0.1, 365.25) == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="no days"):
        annualised_return(0.1, 0)


def test_the_ratio_is_the_out_of_sample_over_the_mean_in_sample_annualised_return():
    # given: windows made +4 % over 4 days and +2 % over 8 days in sample
    in_sample = in_sample_annualised([(0.04, 4), (0.02, 8)])
    # mean of 3.6525 and 0.913125
    assert in_sample == pytest.approx((0.04 / 4 + 0.02 / 8) / 2 * 365.25)
    # when: the stitched out-of-sample run made +1 % over 8 days
    out = annualised_return(0.01, 8)

    # then
    assert overfitting_ratio(in_sample, out) == pytest.approx((0.01 / 8) / ((0.01 + 0.0025) / 2))
    assert overfitting_ratio(in_sample, -out) == pytest.approx(-(0.01 / 8) / 0.00625)


@pytest.mark.parametrize("in_sample", [0.0, -0.5, None])
def test_there_is_no_ratio_when_the_in_sample_return_is_not_positive(in_sample):
    assert overfitting_ratio(in_sample, 0.3) is None


def test_an_unknown_in_sample_return_gives_no_mean():
    assert in_sample_annualised([(0.1, 4), (float("nan"), 4)]) is None
    assert in_sample_annualised([]) is None
    assert overfitting_ratio(0.5, None) is None
