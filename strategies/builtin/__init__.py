"""The built-in strategies. Importing this package registers them (see ``strategies.registry``)."""

from strategies.builtin.bollinger_breakout import BollingerBreakout
from strategies.builtin.ma_cross import MaCross
from strategies.builtin.macd import MacdCross
from strategies.builtin.rsi_reversion import RsiReversion
from strategies.builtin.signals import Signals

__all__ = ["BollingerBreakout", "MaCross", "MacdCross", "RsiReversion", "Signals"]
