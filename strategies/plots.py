"""A strategy's indicators as a chart draws them: JSON series, for any chart of candles (a
backtest's, a bot's). Pure pandas, no Django.

:func:`indicator_chart` gives one entry per :class:`~strategies.base.Plot` the strategy
declares, in its order::

    {"key": "fast", "label": "Fast average", "pane": "price", "color": "#f0b429",
     "style": "line", "data": [[time_ms, value], ...]}

``data`` is ascending, without the warm-up (NaN) rows. When the chart merges candles into bars
(``bar_ms`` longer than a candle), each bar gets the value at its LAST candle (the value once
the bar has closed, as a candle's close is), keyed by the bar's start: ``start_ms + (open_time -
start_ms) // bar_ms * bar_ms``, the key the chart's bars use. A series that never changes (a
level) is sent as its first and last points only: the line between them is the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies.base import Strategy

LOWER_PANE_DECIMALS = 4
UNKNOWN_PRICE_DECIMALS = 8


def indicator_chart(
    strategy: Strategy,
    candles: pd.DataFrame,
    *,
    bar_ms: int | None = None,
    start_ms: int | None = None,
    price_decimals: int | None = None,
    since_ms: int | None = None,
) -> list[dict[str, Any]]:
    """The strategy's plots over ``candles`` (the strategies' input frame), as chart series.

    ``bar_ms`` / ``start_ms`` merge candles into the chart's bars (see the module docstring);
    without them every candle is a point. Values on the price pane are rounded to
    ``price_decimals`` (8 when unknown), those of a lower pane to 4 decimals. ``since_ms`` leaves
    out the points before it: the candles before it only warm the indicators up (a live chart
    shows its last candles with indicators already defined on the first of them).
    """
    if not strategy.plots or candles.empty:
        return [{**plot.schema(), "data": []} for plot in strategy.plots]
    values = strategy.plotted(candles)
    times = candles["open_time"].to_numpy(dtype=np.int64)
    if bar_ms is not None and bar_ms > 0:
        origin = int(times[0]) if start_ms is None else start_ms
        times = origin + (times - origin) // bar_ms * bar_ms
    shown = times >= (since_ms if since_ms is not None else times[0])
    if not shown.any():
        return [{**plot.schema(), "data": []} for plot in strategy.plots]
    times = times[shown]
    charted = []
    for plot in strategy.plots:
        decimals = (
            LOWER_PANE_DECIMALS
            if plot.pane == "lower"
            else (UNKNOWN_PRICE_DECIMALS if price_decimals is None else price_decimals)
        )
        data = _points(values[plot.key].to_numpy(dtype=float)[shown], times, decimals)
        charted.append({**plot.schema(), "data": data})
    return charted


def _points(values: np.ndarray, times: np.ndarray, decimals: int) -> list[list[float]]:
    """``[time_ms, value]`` at the last row of each distinct time, NaN rows left out."""
    last = np.r_[times[1:] != times[:-1], True]  # the last row of each run of equal times
    kept_times, kept = times[last], values[last]
    defined = np.isfinite(kept)
    kept_times, kept = kept_times[defined], np.round(kept[defined], decimals)
    if kept.size > 2 and (kept == kept[0]).all():
        kept_times, kept = kept_times[[0, -1]], kept[[0, -1]]
    return [[int(time), float(value)] for time, value in zip(kept_times, kept, strict=True)]
