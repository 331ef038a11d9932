"""MACD signal-line crossover."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd

from strategies.base import Plot, Strategy, fast_shorter_than_slow, position_series
from strategies.indicators import macd
from strategies.params import Param
from strategies.registry import register


@register
class MacdCross(Strategy):
    key = "macd"
    name = "MACD signal crossover"
    description = (
        "Momentum with the MACD: the fast EMA of the close minus the slow EMA, compared with its "
        "own EMA (the signal line). Long while the MACD line is above the signal line; when it "
        "is below, short if shorting is allowed, otherwise flat. Flat when they are equal and "
        "while the signal line is still warming up (the first slow + signal - 2 candles)."
    )
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "fast",
            "int",
            12,
            min=2,
            max=500,
            label="Fast EMA length",
            help="Fast EMA length, in candles",
        ),
        Param(
            "slow",
            "int",
            26,
            min=3,
            max=2000,
            label="Slow EMA length",
            help="Slow EMA length, in candles",
        ),
        Param(
            "signal",
            "int",
            9,
            min=2,
            max=500,
            label="Signal-line EMA length",
            help="Signal-line EMA length, in candles",
        ),
        Param(
            "allow_short",
            "bool",
            False,
            label="Allow shorts",
            help="Go short while MACD is below its signal",
        ),
    )

    plots: ClassVar[tuple[Plot, ...]] = (
        Plot("macd", "MACD", pane="lower", color="#58a6ff"),
        Plot("signal", "Signal", pane="lower", color="#f0b429"),
        Plot("histogram", "Histogram", pane="lower", style="histogram"),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> dict[str, list[str]]:
        return fast_shorter_than_slow(params)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        lines = macd(
            candles["close"], self.values["fast"], self.values["slow"], self.values["signal"]
        )
        return {"macd": lines["macd"], "signal": lines["signal"], "histogram": lines["hist"]}

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        lines = self.indicators(candles)
        above = lines["macd"] > lines["signal"]
        short = (lines["macd"] < lines["signal"]) if self.allows_short else None
        return position_series(above, short)
