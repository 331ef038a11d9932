"""Moving-average crossover."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd

from strategies.base import Plot, Strategy, fast_shorter_than_slow, position_series
from strategies.indicators import ema, sma
from strategies.params import Param
from strategies.registry import register


@register
class MaCross(Strategy):
    key = "ma_cross"
    name = "Moving-average crossover"
    description = (
        "Trend following with two moving averages of the close. Long while the fast average is "
        "above the slow one; when it is below, short if shorting is allowed, otherwise flat. "
        "Flat when they are equal and while the slow average is still warming up (its first "
        "slow - 1 candles). The averages are simple (SMA) or exponential (EMA, seeded with the "
        "SMA of its first candles)."
    )
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "fast",
            "int",
            10,
            min=2,
            max=500,
            label="Fast average length",
            help="Fast moving-average length, in candles",
        ),
        Param(
            "slow",
            "int",
            30,
            min=3,
            max=2000,
            label="Slow average length",
            help="Slow moving-average length, in candles",
        ),
        Param(
            "ma",
            "choice",
            "sma",
            choices=("sma", "ema"),
            label="Moving-average kind",
            help="Kind of moving average",
        ),
        Param(
            "allow_short",
            "bool",
            False,
            label="Allow shorts",
            help="Go short while the fast average is below",
        ),
    )

    plots: ClassVar[tuple[Plot, ...]] = (
        Plot("fast", "Fast average", color="#f0b429"),
        Plot("slow", "Slow average", color="#58a6ff"),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> dict[str, list[str]]:
        return fast_shorter_than_slow(params)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        average = sma if self.values["ma"] == "sma" else ema
        close = candles["close"]
        return {
            "fast": average(close, self.values["fast"]),
            "slow": average(close, self.values["slow"]),
        }

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        lines = self.indicators(candles)
        fast, slow = lines["fast"], lines["slow"]
        short = (fast < slow) if self.allows_short else None
        return position_series(fast > slow, short)
