"""What strategies draw: ``Plot`` declarations, ``indicators`` checked at registration, and the
chart series of ``strategies.plots`` on hand-made candles (no database)."""

from __future__ import annotations

import pandas as pd
import pytest

from strategies.base import Plot, Strategy, StrategyOutputError, validate_strategy_class
from strategies.builtin import BollingerBreakout, MacdCross, MaCross, RsiReversion
from strategies.indicators import bollinger, macd, rsi
from strategies.params import StrategyDefinitionError
from strategies.plots import indicator_chart
from tests.strategies.test_builtins import MINUTE, V_SHAPE, candles


def strategy_with(plots: object, indicators: object) -> type[Strategy]:
    def target_position(self: Strategy, frame: pd.DataFrame) -> pd.Series:
        return pd.Series(0, index=frame.index, dtype="int8")

    namespace = {
        "key": "drawer",
        "name": "Drawer",
        "target_position": target_position,
        "plots": plots,
        "indicators": indicators,
    }
    return type("Drawer", (Strategy,), namespace)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"key": "Fast"}, "lowercase"),
        ({"label": " "}, "label"),
        ({"pane": "upper"}, "pane must be one of price, lower"),
        ({"style": "dots"}, "style must be one of line, dashed, histogram"),
        ({"color": "red"}, "color must be None or '#rrggbb'"),
    ],
)
def test_a_badly_declared_plot_fails_at_import(fields: dict[str, str], message: str) -> None:
    with pytest.raises(StrategyDefinitionError, match=message):
        Plot(**({"key": "fast", "label": "Fast"} | fields))  # type: ignore[arg-type]


def test_a_strategy_must_return_every_plot_it_declares() -> None:
    # given a strategy that declares two plots and returns one
    cls = strategy_with(
        (Plot("fast", "Fast"), Plot("slow", "Slow")),
        lambda self, frame: {"fast": frame["close"]},
    )

    # when / then: registering it fails, naming the missing key
    with pytest.raises(StrategyDefinitionError, match="'slow'"):
        validate_strategy_class(cls)


def test_a_strategy_whose_indicators_are_not_aligned_or_raise_is_refused() -> None:
    misaligned = strategy_with(
        (Plot("fast", "Fast"),), lambda self, frame: {"fast": frame["close"].reset_index(drop=True)}
    )
    broken = strategy_with((Plot("fast", "Fast"),), lambda self, frame: {"fast": 1 / 0})
    duplicated = strategy_with(
        (Plot("fast", "Fast"), Plot("fast", "Again")), lambda self, frame: {"fast": frame["close"]}
    )
    for cls, message in (
        (misaligned, "Series on candles.index"),
        (broken, "division by zero"),
        (duplicated, "duplicate plots fast"),
    ):
        with pytest.raises(StrategyDefinitionError, match=message):
            validate_strategy_class(cls)
    # and a list instead of a tuple is refused too
    with pytest.raises(StrategyDefinitionError, match="tuple of Plot"):
        validate_strategy_class(strategy_with([Plot("fast", "Fast")], lambda self, frame: {}))


def test_plotted_refuses_a_missing_key_at_run_time_too() -> None:
    strategy = MaCross({"fast": 2, "slow": 4})
    strategy.indicators = lambda frame: {"fast": frame["close"]}  # type: ignore[method-assign]
    with pytest.raises(StrategyOutputError, match="'slow'"):
        strategy.plotted(candles(V_SHAPE))


@pytest.mark.parametrize(
    ("cls", "keys", "panes"),
    [
        (MaCross, ["fast", "slow"], {"price"}),
        (MacdCross, ["macd", "signal", "histogram"], {"lower"}),
        (RsiReversion, ["rsi", "lower", "exit_level", "upper"], {"lower"}),
        (BollingerBreakout, ["upper", "mid", "lower"], {"price"}),
    ],
)
def test_every_builtin_declares_what_it_draws_in_its_schema(
    cls: type[Strategy], keys: list[str], panes: set[str]
) -> None:
    schema = cls.schema()
    assert [plot["key"] for plot in schema["plots"]] == keys
    assert {plot["pane"] for plot in schema["plots"]} == panes
    assert set(cls({}).plotted(candles([100.0 + i % 7 for i in range(80)]))) == set(keys)


def test_the_ma_cross_chart_draws_its_two_averages_without_the_warm_up() -> None:
    # given the V shape (sma2 from row 1, sma4 from row 3: see test_builtins)
    strategy = MaCross({"fast": 2, "slow": 4})

    # when
    series = {entry["key"]: entry for entry in indicator_chart(strategy, candles(V_SHAPE))}

    # then
    assert series["fast"]["label"] == "Fast average"
    assert series["fast"]["pane"] == "price"
    assert series["fast"]["data"][:3] == [[1 * MINUTE, 9.5], [2 * MINUTE, 8.5], [3 * MINUTE, 7.5]]
    assert series["slow"]["data"][:4] == [
        [3 * MINUTE, 8.5],
        [4 * MINUTE, 7.5],
        [5 * MINUTE, 6.5],
        [6 * MINUTE, 6.0],
    ]
    assert len(series["slow"]["data"]) == len(V_SHAPE) - 3


def test_merged_bars_take_the_value_of_their_last_candle() -> None:
    # given bars of 3 candles from the first one
    strategy = MaCross({"fast": 2, "slow": 4})

    # when
    (fast, slow) = indicator_chart(strategy, candles(V_SHAPE), bar_ms=3 * MINUTE, start_ms=0)

    # then each bar at its start, valued at its last candle (rows 2, 5, 8, and 10 for the last)
    assert fast["data"] == [
        [0, 8.5],
        [3 * MINUTE, 5.5],
        [6 * MINUTE, 7.5],
        [9 * MINUTE, 9.5],
    ]
    assert slow["data"] == [[3 * MINUTE, 6.5], [6 * MINUTE, 6.5], [9 * MINUTE, 8.5]]


def test_macd_rsi_and_bands_match_their_indicators_and_levels_are_two_points() -> None:
    closes = [100.0 + (i % 9) - (i % 4) for i in range(120)]
    frame = candles(closes)

    macd_chart = indicator_chart(MacdCross({}), frame)
    rsi_chart = {e["key"]: e for e in indicator_chart(RsiReversion({"lower": 25.0}), frame)}
    bands = {e["key"]: e for e in indicator_chart(BollingerBreakout({}), frame, price_decimals=2)}

    expected = macd(pd.Series(closes), 12, 26, 9)
    assert macd_chart[2]["style"] == "histogram"
    assert macd_chart[2]["data"][-1][1] == round(float(expected["hist"].iloc[-1]), 4)
    assert rsi_chart["rsi"]["data"][-1][1] == round(float(rsi(pd.Series(closes), 14).iloc[-1]), 4)
    assert rsi_chart["lower"]["data"] == [[0, 25.0], [119 * MINUTE, 25.0]]
    assert rsi_chart["upper"]["style"] == "dashed"
    upper = bollinger(pd.Series(closes), 20, 2.0)["upper"]
    assert bands["upper"]["data"][0] == [19 * MINUTE, round(float(upper.iloc[19]), 2)]
