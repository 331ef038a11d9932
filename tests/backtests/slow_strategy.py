"""A test-only strategy module, loaded through the real ``STRATEGY_MODULES`` setting.

``test_slow_ma_cross`` is the built-in moving-average crossover that first sleeps ``sleep``
seconds. A backtest of it stays ``running`` (between its 0.4 and 0.7 progress reports) long enough
for a test to cancel it or to kill its worker, and a sweep of it keeps each worker busy long enough
for the other worker to take the next combination.
"""

from __future__ import annotations

import time
from typing import ClassVar

import pandas as pd

from strategies.builtin import ma_cross
from strategies.params import Param
from strategies.registry import register

MODULE = __name__
KEY = "test_slow_ma_cross"


@register
class SlowMaCross(ma_cross.MaCross):
    key = KEY
    name = "Slow moving-average crossover (tests)"
    description = "The moving-average crossover, after sleeping `sleep` seconds."
    params: ClassVar[tuple[Param, ...]] = (
        *ma_cross.MaCross.params,
        Param("sleep", "float", 0.0, min=0, max=300, help="Seconds to sleep before computing"),
    )

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        time.sleep(self.values["sleep"])
        return super().target_position(candles)
