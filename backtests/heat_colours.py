"""The heat map's colour scale, centred on each metric's break-even value. Pure Python.

A cell is green when its combination did better than break even, red when worse, grey when
exactly even, whatever the other cells did: a losing -2.89 % is red even when every other cell
lost more. The colour's strength is the distance from break even, relative to the farthest cell
of the map (1 = the farthest, 0 = even).

Break even is 0 for returns and ratios, 1 for the profit factor, 50 % for the win rate and the
initial cash for the final equity. A drawdown (never above 0) is always a loss, its depth the
strength; for a lower-is-better metric (the drawdown's duration) more is worse. The exposure has
no good or bad side: its cells are compared with the middle of its range.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Tone = Literal["gain", "loss", "even"]
BREAK_EVEN = {"profit_factor": 1.0, "win_rate": 0.5}
NO_SIDE = frozenset({"exposure"})


@dataclass(frozen=True)
class ColourScale:
    """Where a metric breaks even, how far the farthest cell is from it, and which way is up."""

    pivot: float
    reach: float
    lower_is_better: bool

    def tone(self, value: float) -> Tone:
        if value == self.pivot:
            return "even"
        better = (value < self.pivot) if self.lower_is_better else (value > self.pivot)
        return "gain" if better else "loss"

    def strength(self, value: float) -> float:
        """0 (break even) to 1 (the farthest cell)."""
        return 0.0 if self.reach == 0 else min(abs(value - self.pivot) / self.reach, 1.0)


def colour_scale(
    metric: str, values: Iterable[float], *, initial_cash: float, lower_is_better: bool
) -> ColourScale:
    """The scale of a map of ``metric`` over ``values`` (the finite ones of its cells)."""
    finite = list(values)
    if metric in NO_SIDE and finite:
        pivot = (min(finite) + max(finite)) / 2
    elif metric == "final_equity":
        pivot = initial_cash
    else:
        pivot = BREAK_EVEN.get(metric, 0.0)
    reach = max((abs(value - pivot) for value in finite), default=0.0)
    return ColourScale(pivot=pivot, reach=reach, lower_is_better=lower_is_better)
