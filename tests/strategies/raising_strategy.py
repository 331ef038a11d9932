"""A test-only user strategy module whose own code raises: the checks report it as a failure
of that strategy (the command) or show its error (the page), never a crash."""

from __future__ import annotations

import pandas as pd

from strategies.base import Strategy
from strategies.registry import register

MODULE = __name__
KEY = "test_raising"


@register
class RaisingStrategy(Strategy):
    key = KEY
    name = "Raises on every call (tests)"
    description = "Its target_position raises."

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        raise RuntimeError("this strategy is broken")
