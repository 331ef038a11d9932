"""The built-in strategies on hand-made prices, and the strategy contract (no database)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from strategies.base import Strategy, StrategyInputError, StrategyOutputError, position_series
from strategies.builtin import BollingerBreakout, MacdCross, MaCross, RsiReversion
from strategies.params import Param
from strategies.registry import load_registry

MINUTE = 60_000
FIRST_ROW = 100  # candles are indexed from 100 so alignment to candles.index is really tested


def candles(closes: Sequence[float] | np.ndarray) -> pd.DataFrame:
    close = np.asarray(closes, dtype=float)
    return pd.DataFrame(
        {
            "open_time": np.arange(len(close), dtype=np.int64) * MINUTE,
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": 1.0,
        },
        index=pd.RangeIndex(FIRST_ROW, FIRST_ROW + len(close)),
    )


def positions(strategy: Strategy, closes: Sequence[float]) -> list[int]:
    result = strategy.positions(candles(closes))
    assert result.dtype == np.int8
    assert list(result.index) == list(range(FIRST_ROW, FIRST_ROW + len(closes)))
    return [int(v) for v in result]


# --- ma_cross ------------------------------------------------------------------------------

V_SHAPE = [10.0, 9, 8, 7, 6, 5, 6, 7, 8, 9, 10]
# sma2: -, 9.5, 8.5, 7.5, 6.5, 5.5, 5.5, 6.5, 7.5, 8.5, 9.5
# sma4: -, -, -, 8.5, 7.5, 6.5, 6, 6, 6.5, 7.5, 8.5
# fast < slow in rows 3..6, fast > slow from row 7


def test_ma_cross_stays_flat_on_the_way_down_and_goes_long_after_the_cross() -> None:
    strategy = MaCross({"fast": 2, "slow": 4})
    assert positions(strategy, V_SHAPE) == [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_ma_cross_goes_short_on_the_way_down_when_allowed() -> None:
    strategy = MaCross({"fast": 2, "slow": 4, "allow_short": True})
    assert positions(strategy, V_SHAPE) == [0, 0, 0, -1, -1, -1, -1, 1, 1, 1, 1]


def test_ma_cross_with_emas_crosses_where_the_emas_do() -> None:
    # ema2 (alpha 2/3): [1] 9.5, [2] 8.5, [3] 7.5, [4] 6.5, [5] 5.5, [6] 35/6 ≈ 5.83, [7] ≈ 6.61
    # ema4 (alpha 0.4): [3] 8.5, [4] 7.5, [5] 6.5, [6] 6.3, [7] 6.58
    strategy = MaCross({"fast": 2, "slow": 4, "ma": "ema", "allow_short": True})
    assert positions(strategy, V_SHAPE) == [0, 0, 0, -1, -1, -1, -1, 1, 1, 1, 1]


def test_ma_cross_is_flat_when_the_averages_are_equal() -> None:
    strategy = MaCross({"fast": 2, "slow": 3, "allow_short": True})
    assert positions(strategy, [5.0] * 6) == [0] * 6


# --- rsi_reversion -------------------------------------------------------------------------

RSI_PRICES = [10.0, 9, 8, 8.5, 9.5, 10.5, 12, 11, 10]
# period 2, Wilder alpha 1/2; changes -1, -1, +0.5, +1, +1, +1.5, -1, -1
# row 2: gain 0, loss 1                 -> rsi 0      (< 30: long)
# row 3: gain 0.25, loss 0.5            -> rsi 33.3   (between 30 and 50: long held)
# row 4: gain 0.625, loss 0.25          -> rsi 71.4   (> 50 exits the long; > 70: short)
# row 5: gain 0.8125, loss 0.125        -> rsi 86.7
# row 6: gain 1.15625, loss 0.0625      -> rsi 94.9
# row 7: gain 0.578125, loss 0.53125    -> rsi 52.1   (still > 50: short held)
# row 8: gain 0.2890625, loss 0.765625  -> rsi 27.4   (< 30: long, which also ends the short)


def test_rsi_reversion_buys_oversold_and_holds_until_the_exit_level() -> None:
    strategy = RsiReversion({"period": 2})
    assert positions(strategy, RSI_PRICES) == [0, 0, 1, 1, 0, 0, 0, 0, 1]


def test_rsi_reversion_sells_overbought_and_flips_when_allowed() -> None:
    strategy = RsiReversion({"period": 2, "allow_short": True})
    assert positions(strategy, RSI_PRICES) == [0, 0, 1, 1, -1, -1, -1, -1, 1]


def test_rsi_reversion_exits_at_a_lower_exit_level() -> None:
    # with exit_level 33 the long of row 2 ends at row 3 (rsi 33.3 > 33)
    strategy = RsiReversion({"period": 2, "exit_level": 33})
    assert positions(strategy, RSI_PRICES) == [0, 0, 1, 0, 0, 0, 0, 0, 1]


# --- bollinger_breakout --------------------------------------------------------------------

BAND_PRICES = [10.0, 10, 10, 13, 12, 10.5, 7, 6, 9]
# period 3, k 1 (population std):
# row 2: (10, 10, 10)   mid 10,     bands 10 / 10          close 10: nothing
# row 3: (10, 10, 13)   mid 11,     upper 11 + √2 ≈ 12.41  close 13 above upper: long
# row 4: (10, 13, 12)   mid 11.67                          close 12 above mid: long held
# row 5: (13, 12, 10.5) mid 11.83,  lower ≈ 10.81          close 10.5 below mid: exit;
#                                                          below lower: short
# row 6: (12, 10.5, 7)  mid 9.83,   lower ≈ 7.74           close 7: short
# row 7: (10.5, 7, 6)   mid 7.83                           close 6 below mid: short held
# row 8: (7, 6, 9)      mid 7.33,   upper ≈ 8.58           close 9 above upper: long


def test_bollinger_breakout_buys_above_the_upper_band_and_exits_below_the_middle() -> None:
    strategy = BollingerBreakout({"period": 3, "k": 1})
    assert positions(strategy, BAND_PRICES) == [0, 0, 0, 1, 1, 0, 0, 0, 1]


def test_bollinger_breakout_sells_below_the_lower_band_when_allowed() -> None:
    strategy = BollingerBreakout({"period": 3, "k": 1, "allow_short": True})
    assert positions(strategy, BAND_PRICES) == [0, 0, 0, 1, 1, -1, -1, -1, 1]


# --- macd ----------------------------------------------------------------------------------

MACD_PRICES = [1.0, 3, 2, 6, 4, 8]
# fast 2, slow 3, signal 2 (worked out in test_indicators):
# macd   -, -, 0, 2/3, 2/9 (= 18/81), 20/27 (= 60/81)
# signal -, -, -, 1/3, 7/27 (= 21/81), 47/81


def test_macd_is_long_while_the_macd_is_above_its_signal() -> None:
    strategy = MacdCross({"fast": 2, "slow": 3, "signal": 2})
    assert positions(strategy, MACD_PRICES) == [0, 0, 0, 1, 0, 1]


def test_macd_is_short_while_below_when_allowed() -> None:
    strategy = MacdCross({"fast": 2, "slow": 3, "signal": 2, "allow_short": True})
    assert positions(strategy, MACD_PRICES) == [0, 0, 0, 1, -1, 1]


# --- every built-in --------------------------------------------------------------------------

SMALL_PARAMS: dict[str, dict[str, Any]] = {
    "ma_cross": {"fast": 3, "slow": 8},
    "rsi_reversion": {"period": 5},
    "bollinger_breakout": {"period": 10, "k": 1.5},
    "macd": {"fast": 3, "slow": 8, "signal": 4},
}


def random_walk(rows: int = 400, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return candles(100 * np.exp(np.cumsum(rng.normal(0, 0.02, rows))))


def test_the_builtins_are_the_four_signal_makers_and_signals() -> None:
    assert sorted([*SMALL_PARAMS, "signals"]) == load_registry([]).keys()


def test_the_signals_strategy_is_flat_on_every_candle() -> None:
    # its target comes from the signals a bot receives (bots.services.signals_in), not candles
    strategy = load_registry([]).create("signals", {})
    assert positions(strategy, [100.0 + i for i in range(30)]) == [0] * 30
    assert strategy.schema()["params"] == []


@pytest.mark.parametrize("key", SMALL_PARAMS)
@pytest.mark.parametrize("allow_short", [False, True])
def test_it_never_changes_earlier_positions_when_later_prices_change(
    key: str, allow_short: bool
) -> None:
    # given a built-in that trades on a random walk
    strategy = load_registry([]).create(key, {**SMALL_PARAMS[key], "allow_short": allow_short})
    frame = random_walk()
    whole = strategy.positions(frame)
    assert set(whole.unique()) == ({-1, 0, 1} if allow_short else {0, 1})
    # when the last close jumps, then earlier positions stay
    changed = frame.copy()
    changed.loc[changed.index[-1], "close"] *= 3
    assert strategy.positions(changed).iloc[:-1].equals(whole.iloc[:-1])
    # and every prefix (an unknown future) gives the same positions
    for cut in (1, 7, 8, 9, 20, 100, 399):
        assert strategy.positions(frame.iloc[:cut]).equals(whole.iloc[:cut]), cut


@pytest.mark.parametrize("key", SMALL_PARAMS)
def test_it_is_flat_during_the_warm_up_and_on_no_candles(key: str) -> None:
    strategy = load_registry([]).create(key, {"allow_short": True})
    assert positions(strategy, [100.0 + i % 3 for i in range(5)]) == [0] * 5
    assert len(strategy.positions(candles([]))) == 0


@pytest.mark.parametrize("key", SMALL_PARAMS)
def test_it_describes_each_builtin(key: str) -> None:
    schema = load_registry([]).get(key).schema()
    assert schema["key"] == key
    assert schema["name"]
    assert len(schema["description"]) > 80
    assert [p["name"] for p in schema["params"]][-1] == "allow_short"
    assert schema["stop_loss"] is None
    assert schema["take_profit"] is None


def test_it_describes_ma_cross_exactly() -> None:
    schema = MaCross.schema()
    assert schema["params"] == [
        {
            "name": "fast",
            "label": "Fast average length",
            "type": "int",
            "default": 10,
            "min": 2,
            "max": 500,
            "choices": None,
            "help": "Fast moving-average length, in candles",
        },
        {
            "name": "slow",
            "label": "Slow average length",
            "type": "int",
            "default": 30,
            "min": 3,
            "max": 2000,
            "choices": None,
            "help": "Slow moving-average length, in candles",
        },
        {
            "name": "ma",
            "label": "Moving-average kind",
            "type": "choice",
            "default": "sma",
            "min": None,
            "max": None,
            "choices": ["sma", "ema"],
            "help": "Kind of moving average",
        },
        {
            "name": "allow_short",
            "label": "Allow shorts",
            "type": "bool",
            "default": False,
            "min": None,
            "max": None,
            "choices": None,
            "help": "Go short while the fast average is below",
        },
    ]
    assert MaCross.defaults() == {"fast": 10, "slow": 30, "ma": "sma", "allow_short": False}
    assert MaCross.supports_short()


# --- the contract, enforced by Strategy.positions ----------------------------------------------


class Scripted(Strategy):
    """Returns whatever the test put in ``output``."""

    key = "scripted"
    name = "Scripted"
    params = (Param("allow_short", "bool", False),)
    output: Any = None

    def target_position(self, candles: pd.DataFrame) -> Any:
        return self.output


def run_scripted(output: Any, *, allow_short: bool = False, rows: int = 3) -> pd.Series:
    strategy = Scripted({"allow_short": allow_short})
    strategy.output = output
    return strategy.positions(candles([1.0] * rows))


def test_it_accepts_ints_bools_and_whole_floats_as_positions() -> None:
    index = pd.RangeIndex(FIRST_ROW, FIRST_ROW + 3)
    assert run_scripted(pd.Series([0.0, 1.0, 1.0], index=index)).tolist() == [0, 1, 1]
    assert run_scripted(pd.Series([False, True, False], index=index)).tolist() == [0, 1, 0]
    assert run_scripted(pd.Series([-1, 0, 1], index=index), allow_short=True).tolist() == [-1, 0, 1]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ([0, 1, 1], "returned list, not a Series"),
        (pd.Series([0, 1, 1]), "not aligned to candles.index"),
        (pd.Series([0, np.nan, 1], index=range(100, 103)), "NaN or non-numeric"),
        (pd.Series(["0", "1", "1"], index=range(100, 103)), "NaN or non-numeric"),
        (pd.Series([0, 2, 1], index=range(100, 103)), "outside -1, 0, +1"),
        (pd.Series([0, 0.5, 1], index=range(100, 103)), "outside -1, 0, +1"),
        (pd.Series([0, -1, 1], index=range(100, 103)), "went short although shorts"),
    ],
)
def test_it_rejects_positions_that_break_the_contract(output: Any, message: str) -> None:
    with pytest.raises(StrategyOutputError, match=re.escape(message)):
        run_scripted(output)


def test_it_rejects_candles_without_the_columns() -> None:
    with pytest.raises(StrategyInputError, match="lack the columns volume"):
        MaCross().positions(candles([1.0, 2.0]).drop(columns="volume"))


def test_it_rejects_candles_out_of_order() -> None:
    frame = candles([1.0, 2.0, 3.0]).iloc[[0, 2, 1]]
    with pytest.raises(StrategyInputError, match="strictly ascending by open_time"):
        MaCross().positions(frame)


def test_position_series_reads_nan_as_false() -> None:
    long = pd.Series([True, np.nan, False, False], index=[5, 6, 7, 8], dtype=object)
    short = pd.Series([False, False, True, np.nan], index=[5, 6, 7, 8], dtype=object)
    result = position_series(long, short)
    assert result.tolist() == [1, 0, -1, 0]
    assert list(result.index) == [5, 6, 7, 8]
    assert result.dtype == np.int8
