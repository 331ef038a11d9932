"""The overfitting guards (``strategies.checks``): the built-ins pass both analyses on the shipped
real candles; a strategy that peeks one candle ahead fails the lookahead analysis, naming the
candle and the column; one whose indicator remembers where the data started fails the recursive
analysis. No database: the shipped file is read directly."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from markets.candle_csv import read_candle_file
from markets.candles import SAMPLE_PATH, SAMPLE_TIMEFRAME
from strategies.base import Plot, Strategy, position_series
from strategies.checks import (
    CheckInputError,
    CheckSettings,
    iso_time,
    lookahead_analysis,
    recursive_analysis,
    report_lines,
    strategy_check,
)
from strategies.indicators import ema
from strategies.registry import load_registry
from tests.strategies.drifting_strategy import DriftingStrategy
from tests.strategies.peeking_strategy import PeekingStrategy

CANDLES = 2500


@functools.cache
def _shipped() -> pd.DataFrame:
    rows = read_candle_file(SAMPLE_PATH, timeframe=SAMPLE_TIMEFRAME).rows[-CANDLES:]
    frame = pd.DataFrame([row._asdict() for row in rows])
    for column in ("open", "high", "low", "close", "volume"):
        frame[column] = frame[column].astype(float)
    return frame


def shipped() -> pd.DataFrame:
    """The last 2,500 real BTC/USDT 5m candles of the shipped sample, indexed from 700 (so that
    nothing relies on a 0-based index)."""
    frame = _shipped().copy()
    frame.index = pd.RangeIndex(700, 700 + len(frame))
    return frame


def made_up(closes: Any) -> pd.DataFrame:
    close = np.asarray(closes, dtype=float)
    return pd.DataFrame(
        {
            "open_time": np.arange(len(close), dtype=np.int64) * 60_000,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": 1.0,
        }
    )


BUILTIN_CASES = [
    ("ma_cross", {}),
    ("ma_cross", {"ma": "ema", "allow_short": True}),
    ("macd", {}),
    ("macd", {"allow_short": True}),
    ("rsi_reversion", {}),
    ("rsi_reversion", {"allow_short": True}),
    ("bollinger_breakout", {}),
    ("bollinger_breakout", {"allow_short": True}),
    ("signals", {}),
]


@pytest.mark.parametrize(("key", "params"), BUILTIN_CASES)
def test_every_builtin_passes_both_analyses_on_the_shipped_candles(key, params):
    # given a built-in strategy and real candles
    strategy = load_registry([], make_active=False).create(key, params)

    # when
    check = strategy_check(strategy, shipped())

    # then
    assert check.passed, report_lines(check)
    assert check.failure() is None
    assert check.lookahead.columns[0] == "position"
    assert set(check.lookahead.columns[1:]) == {plot.key for plot in strategy.plots}
    assert len(check.lookahead.cut_times) >= 40
    assert check.recursive.warmups == (200, 500, 1000)
    assert all(column.converged for column in check.recursive.columns)


def test_a_strategy_peeking_one_candle_ahead_fails_naming_the_first_differing_candle():
    # given the peeking strategy (long while the NEXT close is higher) and real candles
    candles = shipped()
    close = candles["close"].to_numpy()
    times = candles["open_time"].to_numpy()

    # when
    result = lookahead_analysis(PeekingStrategy(), candles)

    # then both its columns are caught
    assert not result.passed
    assert {finding.column for finding in result.findings} == {"position", "next_close"}
    cut_rows = [int(np.flatnonzero(times == time)[0]) for time in result.cut_times]
    # next_close is NaN on the last candle of every cut, a price with all candles: the first cut
    (next_close,) = [f for f in result.findings if f.column == "next_close"]
    assert next_close.open_time == times[cut_rows[0]]
    assert np.isnan(next_close.truncated)
    assert next_close.full == close[cut_rows[0] + 1]
    # the position differs on a cut's last candle exactly when the next candle closed higher
    (position,) = [f for f in result.findings if f.column == "position"]
    rising = [row for row in cut_rows if close[row + 1] > close[row]]
    assert position.open_time == times[rising[0]]
    assert (position.full, position.truncated) == (1.0, 0.0)
    # and the first finding is the earliest of the two (the position first on a tie)
    expected = position if position.open_time <= next_close.open_time else next_close
    assert result.first == expected
    assert expected.describe().startswith(
        f"first differing candle {iso_time(expected.open_time)}, column {expected.column!r}"
    )


def test_the_peeking_strategy_passes_the_recursive_analysis_its_bug_is_not_warm_up():
    check = strategy_check(PeekingStrategy(), shipped())
    assert check.recursive.passed
    assert not check.passed
    assert check.failure().startswith("test_peeking: lookahead: first differing candle ")


def test_an_indicator_that_remembers_the_first_candle_fails_the_recursive_analysis():
    # given the drifting strategy: the mean of every close so far (causal, but never forgets)
    strategy = DriftingStrategy()

    # when
    check = strategy_check(strategy, shipped())

    # then the lookahead analysis finds nothing, the recursive one names the column
    assert check.lookahead.passed
    assert not check.recursive.passed
    (column,) = check.recursive.failures
    assert column.column == "mean_so_far"
    assert column.warmups == (200, 500, 1000)
    assert column.largest > check.settings.tolerance
    # the shortest warm-up is the furthest off: the mean of the last 300 closes against the
    # mean of all of them, over the reference's mean size on the target range (its last 100)
    close = shipped()["close"]
    reference = close.expanding().mean().to_numpy()
    scale = np.abs(reference[-100:]).mean()
    expected = abs(close.iloc[-300:].mean() - reference[-1]) / scale
    assert column.differences[0] == pytest.approx(expected, rel=1e-9)
    assert column.differences[0] == column.largest
    assert check.failure() == f"test_drifting: recursive: {column.describe()}"


class _GlobalScale(Strategy):
    """Divides by the maximum of ALL the closes: every earlier value moves with a later candle."""

    key = "global_scale"
    name = "Global scale"
    plots: ClassVar[tuple[Plot, ...]] = (Plot("scaled", "Close over the maximum"),)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        return {"scaled": candles["close"] / candles["close"].max()}

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        return position_series(self.indicators(candles)["scaled"] > 0.5)


def test_a_value_that_depends_on_later_candles_is_caught_at_the_first_candle():
    # given rising prices, so the maximum grows with every candle
    candles = made_up(np.arange(100.0, 500.0))

    # when
    result = lookahead_analysis(_GlobalScale(), candles)

    # then the very first candle already differs between a cut and the full run
    assert result.first is not None
    assert result.first.open_time == 0
    assert result.first.column == "position"  # 100/499 <= 0.5 with all, 1.0 > 0.5 cut at 0
    assert {f.column for f in result.findings} == {"position", "scaled"}


class _LongEma(Strategy):
    key = "long_ema"
    name = "Long EMA"
    plots: ClassVar[tuple[Plot, ...]] = (Plot("ema", "EMA"),)

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        return {"ema": ema(candles["close"], self.length)}

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        return position_series(candles["close"] > self.indicators(candles)["ema"])


def test_an_ema_converges_once_the_warm_up_is_long_enough_for_its_memory():
    candles = shipped()
    settings = CheckSettings(warmups=(200, 500))
    # a 20-candle EMA forgets its seed within 200 candles
    assert recursive_analysis(_LongEma(20), candles, settings).passed
    # a 400-candle EMA seeded 300 candles before the end of the range is not even defined there
    slow = recursive_analysis(_LongEma(400), candles, settings)
    (column,) = slow.failures
    assert column.differences[0] == np.inf
    assert column.differences[1] < column.differences[0]


def test_the_cut_points_are_bounded_seeded_and_after_the_warm_up():
    # given
    candles = shipped()
    settings = CheckSettings(cuts=10, random_cuts=5, seed=7)
    strategy = load_registry([], make_active=False).create("ma_cross", {})

    # when
    first = lookahead_analysis(strategy, candles, settings)
    again = lookahead_analysis(strategy, candles, settings)

    # then at most 15 cuts, the same ones every time, from the slow average's first value
    times = candles["open_time"].to_numpy()
    assert first.cut_times == again.cut_times
    assert 10 <= len(first.cut_times) <= 15
    assert first.cut_times[0] == times[29]  # the 30-candle SMA's first value
    assert first.cut_times[-1] == times[-2]


def test_too_few_candles_are_refused_with_the_number_needed():
    strategy = load_registry([], make_active=False).create("ma_cross", {})
    with pytest.raises(CheckInputError, match="at least 301 candles, got 300"):
        strategy_check(strategy, made_up(np.linspace(100, 200, 300)))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cuts": 0}, "cuts and target must be at least 1"),
        ({"random_cuts": -1}, "random_cuts at least 0"),
        ({"target": 0}, "cuts and target must be at least 1"),
        ({"warmups": ()}, "warmups must be positive"),
        ({"warmups": (0, 200)}, "warmups must be positive"),
        ({"tolerance": 0}, "tolerance must be positive"),
    ],
)
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        CheckSettings(**fields)
