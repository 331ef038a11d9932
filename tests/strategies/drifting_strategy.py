"""A test-only user strategy module whose indicator depends on where the data starts.

``test_drifting`` is long while the close is above the mean of EVERY close so far
(``expanding().mean()``): causal, so it passes the lookahead analysis, but the mean never forgets
the first candle it saw, so it fails the recursive analysis.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from strategies.base import Plot, Strategy, position_series
from strategies.registry import register

MODULE = __name__
KEY = "test_drifting"


@register
class DriftingStrategy(Strategy):
    key = KEY
    name = "Above the mean of all closes so far (tests)"
    description = "Long while the close is above the expanding mean of the closes."
    plots: ClassVar[tuple[Plot, ...]] = (Plot("mean_so_far", "Mean of every close so far"),)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        return {"mean_so_far": candles["close"].expanding().mean()}

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        return position_series(candles["close"] > self.indicators(candles)["mean_so_far"])
