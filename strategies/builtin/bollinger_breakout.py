"""Bollinger band breakout."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from strategies.base import Plot, Strategy, position_series
from strategies.indicators import bollinger, latch
from strategies.params import Param
from strategies.registry import register


@register
class BollingerBreakout(Strategy):
    key = "bollinger_breakout"
    name = "Bollinger band breakout"
    description = (
        "Rides volatility breakouts. Goes long when a candle closes above the upper Bollinger "
        "band (the period SMA of the close plus k population standard deviations) and stays "
        "long until a close below the middle band (the SMA). With shorting allowed it mirrors "
        "this: short on a close below the lower band, held until a close above the middle band. "
        "Flat during the band warm-up (the first period - 1 candles)."
    )
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "period", "int", 20, min=2, max=500, label="Band length", help="Band length, in candles"
        ),
        Param(
            "k",
            "float",
            2.0,
            min=0.1,
            max=10,
            label="Band width (standard deviations)",
            help="Band width, in standard deviations",
        ),
        Param(
            "allow_short",
            "bool",
            False,
            label="Allow shorts",
            help="Also trade breakouts below the lower band",
        ),
    )

    plots: ClassVar[tuple[Plot, ...]] = (
        Plot("upper", "Upper band", color="#58a6ff"),
        Plot("mid", "Middle band", color="#8b96a3", style="dashed"),
        Plot("lower", "Lower band", color="#58a6ff"),
    )

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        bands = bollinger(candles["close"], self.values["period"], self.values["k"])
        return {name: bands[name] for name in ("upper", "mid", "lower")}

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        bands = self.indicators(candles)
        # upper >= mid >= lower, so an entry of one side is always an exit of the other.
        long = latch(close > bands["upper"], close < bands["mid"])
        short = None
        if self.allows_short:
            short = latch(close < bands["lower"], close > bands["mid"])
        return position_series(long, short)
