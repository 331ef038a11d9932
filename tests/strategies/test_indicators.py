"""Indicators against values worked out by hand, and causality (pure pandas, no database)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from strategies.indicators import atr, bollinger, ema, latch, macd, rsi, sma, true_range

NAN = math.nan


def values(series: pd.Series) -> list[float]:
    return [float(v) for v in series.to_numpy()]


def assert_close(actual: pd.Series, expected: list[float]) -> None:
    np.testing.assert_allclose(values(actual), expected, rtol=0, atol=1e-12, equal_nan=True)


def test_it_computes_a_simple_moving_average() -> None:
    assert_close(sma(pd.Series([1.0, 2, 3, 4, 5]), 3), [NAN, NAN, 2, 3, 4])


def test_it_seeds_the_ema_with_the_sma_of_the_first_n_values() -> None:
    # given n = 3, so alpha = 2 / (3 + 1) = 0.5
    # ema[2] = mean(2, 4, 6) = 4
    # ema[3] = 0.5 * 8 + 0.5 * 4 = 6
    # ema[4] = 0.5 * 4 + 0.5 * 6 = 5
    # ema[5] = 0.5 * 2 + 0.5 * 5 = 3.5
    assert_close(ema(pd.Series([2.0, 4, 6, 8, 4, 2]), 3), [NAN, NAN, 4, 6, 5, 3.5])


def test_it_starts_the_ema_after_leading_nans() -> None:
    # the seed is the mean of the first n VALID values: mean(2, 4) = 3, then alpha = 2/3
    # ema[3] = 2/3 * 6 + 1/3 * 3 = 5
    assert_close(ema(pd.Series([NAN, 2.0, 4, 6]), 2), [NAN, NAN, 3, 5])


def test_it_computes_rsi_with_wilders_smoothing() -> None:
    # given closes 10, 11, 10, 12, 11, 13 and n = 3: changes +1, -1, +2, -1, +2
    # rsi[3]: avg gain = (1 + 0 + 2) / 3 = 1, avg loss = (0 + 1 + 0) / 3 = 1/3
    #         rsi = 100 * 1 / (1 + 1/3) = 75
    # rsi[4]: gain = (1 * 2 + 0) / 3 = 2/3, loss = (1/3 * 2 + 1) / 3 = 5/9
    #         rsi = 100 * (2/3) / (2/3 + 5/9) = 600 / 11
    # rsi[5]: gain = (2/3 * 2 + 2) / 3 = 10/9, loss = (5/9 * 2 + 0) / 3 = 10/27
    #         rsi = 100 * (10/9) / (10/9 + 10/27) = 75
    result = rsi(pd.Series([10.0, 11, 10, 12, 11, 13]), 3)
    assert_close(result, [NAN, NAN, NAN, 75, 600 / 11, 75])


def test_it_gives_rsi_100_without_losses_and_50_without_moves() -> None:
    assert_close(rsi(pd.Series([1.0, 2, 3, 4]), 2), [NAN, NAN, 100, 100])
    assert_close(rsi(pd.Series([5.0, 5, 5, 5]), 2), [NAN, NAN, 50, 50])


def test_it_computes_macd_signal_and_histogram() -> None:
    # given closes 1, 3, 2, 6, 4, 8 and fast 2 (alpha 2/3), slow 3 (alpha 1/2), signal 2
    # ema2: [1] = (1 + 3) / 2 = 2; [2] = 2/3*2 + 1/3*2 = 2; [3] = 2/3*6 + 1/3*2 = 14/3;
    #       [4] = 2/3*4 + 1/3*14/3 = 38/9; [5] = 2/3*8 + 1/3*38/9 = 182/27
    # ema3: [2] = (1 + 3 + 2) / 3 = 2; [3] = (6 + 2) / 2 = 4; [4] = (4 + 4) / 2 = 4; [5] = 6
    # macd: [2] = 0, [3] = 2/3, [4] = 2/9, [5] = 20/27
    # signal (ema2 of macd from row 2): [3] = (0 + 2/3) / 2 = 1/3;
    #       [4] = 2/3*2/9 + 1/3*1/3 = 7/27; [5] = 2/3*20/27 + 1/3*7/27 = 47/81
    result = macd(pd.Series([1.0, 3, 2, 6, 4, 8]), fast=2, slow=3, signal=2)
    assert list(result.columns) == ["macd", "signal", "hist"]
    assert_close(result["macd"], [NAN, NAN, 0, 2 / 3, 2 / 9, 20 / 27])
    assert_close(result["signal"], [NAN, NAN, NAN, 1 / 3, 7 / 27, 47 / 81])
    assert_close(result["hist"], [NAN, NAN, NAN, 1 / 3, -1 / 27, 13 / 81])


def test_it_starts_the_default_macd_signal_at_row_33() -> None:
    result = macd(pd.Series(np.linspace(100, 150, 40)))
    assert result["macd"].first_valid_index() == 25
    assert result["signal"].first_valid_index() == 33


def test_it_computes_bollinger_bands_with_the_population_std() -> None:
    # given n = 3, k = 2
    # row 2: (1, 2, 3): mid 2, variance (1 + 0 + 1) / 3 = 2/3
    # row 3: (2, 3, 5): mid 10/3, deviations -4/3, -1/3, 5/3, variance (16 + 1 + 25) / 27 = 14/9
    result = bollinger(pd.Series([1.0, 2, 3, 5]), 3, 2)
    assert list(result.columns) == ["mid", "upper", "lower"]
    std2, std3 = math.sqrt(2 / 3), math.sqrt(14 / 9)
    assert_close(result["mid"], [NAN, NAN, 2, 10 / 3])
    assert_close(result["upper"], [NAN, NAN, 2 + 2 * std2, 10 / 3 + 2 * std3])
    assert_close(result["lower"], [NAN, NAN, 2 - 2 * std2, 10 / 3 - 2 * std3])


def test_it_gives_bollinger_bands_no_width_when_prices_do_not_move() -> None:
    result = bollinger(pd.Series([7.0] * 5), 3, 2)
    assert_close(result["upper"], [NAN, NAN, 7, 7, 7])
    assert_close(result["lower"], [NAN, NAN, 7, 7, 7])


HIGH = [10.0, 11, 13, 15, 14]
LOW = [8.0, 9, 10, 14, 11]
CLOSE = [9.0, 10, 12, 14.5, 12]


def test_it_computes_the_true_range_with_gaps() -> None:
    # row 0: 10 - 8 = 2 (no previous close)
    # row 1: max(11 - 9, |11 - 9|, |9 - 9|) = 2
    # row 2: max(13 - 10, |13 - 10|, |10 - 10|) = 3
    # row 3: max(15 - 14, |15 - 12|, |14 - 12|) = 3 (a gap up)
    # row 4: max(14 - 11, |14 - 14.5|, |11 - 14.5|) = 3.5
    assert_close(true_range(HIGH, LOW, CLOSE), [2, 2, 3, 3, 3.5])


def test_it_computes_atr_with_wilders_smoothing() -> None:
    # n = 3: atr[2] = (2 + 2 + 3) / 3 = 7/3; atr[3] = (7/3 * 2 + 3) / 3 = 23/9;
    # atr[4] = (23/9 * 2 + 3.5) / 3 = 77.5/27
    result = atr(pd.Series(HIGH), pd.Series(LOW), pd.Series(CLOSE), 3)
    assert_close(result, [NAN, NAN, 7 / 3, 23 / 9, 77.5 / 27])


def test_it_keeps_the_index_of_the_input() -> None:
    closes = pd.Series([1.0, 2, 3, 4, 5], index=[10, 11, 12, 13, 14])
    assert list(sma(closes, 2).index) == [10, 11, 12, 13, 14]
    assert list(ema(closes, 2).index) == [10, 11, 12, 13, 14]
    assert list(rsi(closes, 2).index) == [10, 11, 12, 13, 14]
    assert list(macd(closes, 2, 3, 2).index) == [10, 11, 12, 13, 14]


def test_it_is_all_nan_when_there_are_fewer_rows_than_the_window() -> None:
    assert_close(ema(pd.Series([1.0, 2]), 3), [NAN, NAN])
    assert_close(rsi(pd.Series([1.0, 2, 3]), 3), [NAN, NAN, NAN])
    assert len(sma(pd.Series([], dtype=float), 3)) == 0


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_it_rejects_a_window_that_is_not_a_positive_integer(n: object) -> None:
    with pytest.raises(ValueError, match="n must be a positive integer"):
        sma(pd.Series([1.0, 2]), n)  # type: ignore[arg-type]


def test_it_latches_a_state_from_entry_to_exit() -> None:
    enter = pd.Series([False, True, False, False, True, True, False])
    exit_ = pd.Series([False, False, False, True, False, True, True])
    # row 5 has both: entering wins; row 6 exits
    assert latch(enter, exit_).tolist() == [False, True, True, False, True, True, False]


def random_walk(rows: int = 300, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, rows)))
    spread = np.abs(rng.normal(0, 0.005, rows)) * close
    return pd.DataFrame({"high": close + spread, "low": close - spread, "close": close})


INDICATORS: dict[str, Callable[[pd.DataFrame], pd.DataFrame | pd.Series]] = {
    "sma": lambda f: sma(f["close"], 10),
    "ema": lambda f: ema(f["close"], 10),
    "rsi": lambda f: rsi(f["close"], 14),
    "macd": lambda f: macd(f["close"], 12, 26, 9),
    "bollinger": lambda f: bollinger(f["close"], 20, 2),
    "true_range": lambda f: true_range(f["high"], f["low"], f["close"]),
    "atr": lambda f: atr(f["high"], f["low"], f["close"], 14),
    "latch": lambda f: latch(f["close"] > 101, f["close"] < 99),
}


@pytest.mark.parametrize("name", INDICATORS)
def test_it_never_changes_earlier_values_when_the_last_one_changes(name: str) -> None:
    # given an indicator over a random walk
    indicator = INDICATORS[name]
    frame = random_walk()
    before = pd.DataFrame(indicator(frame))
    # when the last candle changes wildly
    changed = frame.copy()
    changed.iloc[-1] = [500.0, 1.0, 250.0]
    after = pd.DataFrame(indicator(changed))
    # then every earlier value is exactly the same
    pd.testing.assert_frame_equal(after.iloc[:-1], before.iloc[:-1])
    assert not after.iloc[-1].equals(before.iloc[-1])


@pytest.mark.parametrize("name", INDICATORS)
def test_it_computes_each_prefix_exactly_as_the_whole_series(name: str) -> None:
    # given an indicator over a random walk
    indicator = INDICATORS[name]
    frame = random_walk()
    whole = pd.DataFrame(indicator(frame))
    # then truncating the input (the future unknown) gives the same past values
    for cut in (1, 5, 13, 14, 15, 26, 33, 34, 100, 299):
        pd.testing.assert_frame_equal(pd.DataFrame(indicator(frame.iloc[:cut])), whole.iloc[:cut])
