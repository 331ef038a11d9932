"""RSI mean reversion with hysteresis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd

from strategies.base import Plot, Strategy, position_series
from strategies.indicators import latch, rsi
from strategies.params import Param
from strategies.registry import register


@register
class RsiReversion(Strategy):
    key = "rsi_reversion"
    name = "RSI mean reversion"
    description = (
        "Buys oversold and sells overbought markets, betting on a return to the mean. Goes long "
        "when the RSI (Wilder) closes below the lower level and stays long until it closes "
        "above the exit level (50 by default), so it does not flap around the entry level. With "
        "shorting allowed it mirrors this: short when the RSI closes above the upper level, "
        "held until it closes below the exit level. A jump from below the lower to above the "
        "upper level (or back) flips the position at once. Flat during the RSI warm-up (the "
        "first period candles)."
    )
    params: ClassVar[tuple[Param, ...]] = (
        Param(
            "period", "int", 14, min=2, max=500, label="RSI length", help="RSI length, in candles"
        ),
        Param(
            "lower",
            "float",
            30.0,
            min=1,
            max=99,
            label="Oversold level (go long below)",
            help="Go long when the RSI is below this",
        ),
        Param(
            "upper",
            "float",
            70.0,
            min=1,
            max=99,
            label="Overbought level (go short above)",
            help="Go short when the RSI is above this",
        ),
        Param(
            "exit_level",
            "float",
            50.0,
            min=1,
            max=99,
            label="RSI exit level",
            help="Close a long when the RSI rises above this, a short when it falls below",
        ),
        Param(
            "allow_short",
            "bool",
            False,
            label="Allow shorts",
            help="Also trade the overbought side short",
        ),
    )

    plots: ClassVar[tuple[Plot, ...]] = (
        Plot("rsi", "RSI", pane="lower", color="#a371f7"),
        Plot("lower", "Lower level", pane="lower", color="#3fb68b", style="dashed"),
        Plot("exit_level", "Exit level", pane="lower", color="#8b96a3", style="dashed"),
        Plot("upper", "Upper level", pane="lower", color="#e5534b", style="dashed"),
    )

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> dict[str, list[str]]:
        lower, exit_level, upper = params["lower"], params["exit_level"], params["upper"]
        errors: dict[str, list[str]] = {}
        if not lower < upper:
            errors["upper"] = [f"upper must be greater than lower ({lower:g}), got {upper:g}"]
        elif not lower < exit_level < upper:
            errors["exit_level"] = [
                f"exit_level must be between lower ({lower:g}) and upper ({upper:g}), "
                f"got {exit_level:g}"
            ]
        return errors

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        def level(name: str) -> pd.Series:
            return pd.Series(float(self.values[name]), index=candles.index)

        return {
            "rsi": rsi(candles["close"], self.values["period"]),
            **{name: level(name) for name in ("lower", "exit_level", "upper")},
        }

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        value = rsi(candles["close"], self.values["period"])
        exit_level = self.values["exit_level"]
        # lower < exit_level < upper, so an entry of one side is always an exit of the other:
        # the two latches are never on together.
        long = latch(value < self.values["lower"], value > exit_level)
        short = None
        if self.allows_short:
            short = latch(value > self.values["upper"], value < exit_level)
        return position_series(long, short)
