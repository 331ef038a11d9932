"""Signals: a strategy with no signal of its own; the bot trades on the signals it receives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from strategies.base import Strategy
from strategies.registry import register


@register
class Signals(Strategy):
    """Flat on every candle: the target is set from outside. A bot of this strategy holds the
    position its last received signal asked for (``bots.services.signals_in``; the tick reads
    ``Bot.signal_target`` instead of these positions), so a backtest of it trades nothing."""

    key = "signals"
    backtestable = False
    name = "Signals (webhook)"
    description = (
        "Trades only on signals posted to the bot's webhook (a TradingView alert, a script): "
        "buy or long to enter, sell, close or flat to exit, short (perpetual swaps) to go "
        "short. Flat until the first signal arrives; the bot keeps the position the last "
        "signal asked for, with its stop-loss and take-profit. It has no signal of its own, "
        "so a backtest of it makes no trades."
    )

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        return pd.Series(np.zeros(len(candles), dtype=np.int8), index=candles.index)
