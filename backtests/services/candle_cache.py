"""The candles of a run, read once per worker process.

A run's candles are fixed when it is created (its market and period), so the tasks of one
sweep, optimisation or walk-forward that land on the same worker process share one read: a
worker keeps the frames of the last ``CANDLE_CACHE_SIZE`` runs it worked on, keyed by the run's
model and id. Engine inputs are never mutated, so sharing a frame is safe.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pandas as pd

from backtests.services.runs import period_candles

CANDLE_CACHE_SIZE = 2
_cache: OrderedDict[tuple[str, int], pd.DataFrame] = OrderedDict()


def run_candles(run: Any) -> pd.DataFrame:
    """``period_candles(run)``, from this process's cache when it holds them."""
    key = (run._meta.label, run.pk)
    candles = _cache.get(key)
    if candles is None:
        candles = period_candles(run)
        _cache[key] = candles
        while len(_cache) > CANDLE_CACHE_SIZE:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    return candles


def forget() -> None:
    """Drop every cached frame (tests; a worker never needs to)."""
    _cache.clear()
