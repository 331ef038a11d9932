"""A test-only user strategy module that peeks one candle ahead, loaded through the real
``STRATEGY_MODULES`` setting (or ``load_registry``).

``test_peeking`` is long while the NEXT candle closes higher (``close.shift(-1)``), and draws
that next close as its indicator ``next_close``: exactly the bug the lookahead analysis exists
for. Its backtests would look brilliant.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from strategies.base import Plot, Strategy, position_series
from strategies.registry import register

MODULE = __name__
KEY = "test_peeking"


@register
class PeekingStrategy(Strategy):
    key = KEY
    name = "Peeking one candle ahead (tests)"
    description = "Long while the next candle closes higher: it reads the future."
    plots: ClassVar[tuple[Plot, ...]] = (Plot("next_close", "Next close"),)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        return {"next_close": candles["close"].shift(-1)}

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        return position_series(candles["close"].shift(-1) > candles["close"])
