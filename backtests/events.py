"""Payloads of the backtests' live events (``data`` of ``backtest.*`` and ``sweep.*`` messages).

``backtest.status`` reports progress while a backtest runs (at most two a second) and each change
of status: queued, running, then done, failed or cancelled. ``sweep.status`` does the same for
a sweep. A subscription starts with a ``*.snapshot`` of the same shape.
"""

from __future__ import annotations

from typing import TypedDict


class BacktestStatusData(TypedDict):
    status: str
    progress: float  # 0..1
    error: str


class SweepStatusData(TypedDict):
    status: str
    progress: float  # 0..1
    done: int
    failed: int
    total: int
