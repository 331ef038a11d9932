"""Monte Carlo of a backtest's trades: how much of its drawdown and final equity was the luck of
the order its trades came in? Pure numpy, no Django.

Each trade is taken as its **return on equity**: its pnl over the equity it was opened with
(``initial_cash`` plus the pnl of every earlier trade), which is how the engine sizes a trade (a
fixed share of the cash at entry), so a trade's pnl scales with the equity in front of it. A run
compounds ``runs`` sequences of these returns from ``initial_cash``; its equity after each trade
is ``initial_cash * prod(1 + r)`` so far, its max drawdown the deepest fall of that curve below its
running peak (``initial_cash`` included), a NEGATIVE fraction as ``backtests.metrics`` writes it.

Two kinds of run, both with a fixed seed (the same backtest always gives the same figures):

- **Reshuffled**: the same trades in a random order (a permutation, no repeats). Compounding
  is a product, so every reshuffle ends at the same final equity as the backtest; only the path,
  hence the drawdown, changes. This is the band the page leads with.
- **Resampled**: as many trades drawn from the backtest's own trades *with replacement* (a
  bootstrap), so some trades repeat and others drop out: the final equity varies too.

Each figure is given as its 5th, 50th and 95th percentiles (``numpy.percentile``, linear): the
5th is the bad tail for both (a deeper drawdown, a smaller equity). The backtest's own order is
measured the same way (``original_*``). These drawdowns follow the equity at each closed trade,
not at every candle as the ``max_drawdown`` metric does, so the original's may be shallower than
the metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_RUNS = 1000
MIN_RUNS = 100
MAX_CELLS = 300_000  # runs x trades: 1,000 runs up to 300 trades; ~15 ms and ~10 MB at most
DEFAULT_SEED = 19
PERCENTILES = (5, 50, 95)


@dataclass(frozen=True)
class Band:
    """The 5th, 50th and 95th percentiles of a figure over the runs."""

    p5: float
    p50: float
    p95: float


@dataclass(frozen=True)
class MonteCarlo:
    runs: int
    trades: int
    seed: int
    original_max_drawdown: float
    original_final_equity: float
    shuffled_max_drawdown: Band
    shuffled_final_equity: Band
    resampled_max_drawdown: Band
    resampled_final_equity: Band

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (plain floats and ints), for the export."""
        return asdict(self)


def returns_on_equity(pnls: Sequence[float], *, initial_cash: float) -> np.ndarray | None:
    """Each trade's pnl over the equity before it (in trade order); None when that equity was
    ever zero or less (nothing left to compound)."""
    pnl = np.asarray(pnls, dtype=float)
    before = initial_cash + np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    if len(pnl) and not (before > 0).all():
        return None
    return pnl / before


def runs_for(trades: int, *, runs: int = DEFAULT_RUNS) -> int:
    """``runs``, fewer for a long list of trades so that ``runs * trades`` stays within
    ``MAX_CELLS`` (bounded time and memory), never fewer than ``MIN_RUNS``."""
    if trades <= 0:
        return runs
    return max(MIN_RUNS, min(runs, MAX_CELLS // trades))


def _drawdowns_and_finals(growth: np.ndarray, initial_cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``1 + return`` factors (a trade per row, a run per column; overwritten):
    the max drawdown (<= 0) and the final equity of the compounded path. Trades run down the
    rows, so every step is one vectorised operation across the runs."""
    np.cumprod(growth, axis=0, out=growth)
    peaks = np.maximum.accumulate(growth, axis=0)
    np.maximum(peaks, 1.0, out=peaks)  # the initial cash is the first peak
    np.divide(growth, peaks, out=peaks)
    drawdowns = np.minimum(peaks.min(axis=0) - 1.0, 0.0)
    return drawdowns, initial_cash * growth[-1]


def _runs(
    factors: np.ndarray, *, runs: int, rng: np.random.Generator, initial_cash: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The drawdowns and final equities of ``runs`` reshuffled and ``runs`` resampled paths,
    made ``MAX_CELLS // trades`` runs at a time so that the memory stays bounded."""
    count = len(factors)
    step = max(1, MAX_CELLS // count)
    parts: list[tuple[np.ndarray, ...]] = []
    for done in range(0, runs, step):
        width = min(step, runs - done)
        shuffled = rng.permuted(np.repeat(factors[:, np.newaxis], width, axis=1), axis=0)
        resampled = factors[rng.integers(0, count, size=(count, width))]
        parts.append(
            (
                *_drawdowns_and_finals(shuffled, initial_cash),
                *_drawdowns_and_finals(resampled, initial_cash),
            )
        )
    joined = [np.concatenate(column) for column in zip(*parts, strict=True)]
    return joined[0], joined[1], joined[2], joined[3]


def _band(values: np.ndarray) -> Band:
    low, mid, high = np.percentile(values, PERCENTILES)
    return Band(float(low), float(mid), float(high))


def trade_monte_carlo(
    returns: Sequence[float] | np.ndarray,
    *,
    initial_cash: float,
    runs: int = DEFAULT_RUNS,
    seed: int = DEFAULT_SEED,
) -> MonteCarlo | None:
    """The reshuffled and resampled runs of the module docstring; None for fewer than 2 trades
    (a single trade has one order). ``returns`` are returns on equity
    (:func:`returns_on_equity`), in the backtest's order."""
    factors = 1.0 + np.asarray(returns, dtype=float)
    count = len(factors)
    if count < 2 or runs < 1:
        return None
    rng = np.random.default_rng(seed)
    original_drawdown, original_final = _drawdowns_and_finals(
        factors[:, np.newaxis].copy(), initial_cash
    )
    shuffled_drawdown, shuffled_final, resampled_drawdown, resampled_final = _runs(
        factors, runs=runs, rng=rng, initial_cash=initial_cash
    )
    return MonteCarlo(
        runs=runs,
        trades=count,
        seed=seed,
        original_max_drawdown=float(original_drawdown[0]),
        original_final_equity=float(original_final[0]),
        shuffled_max_drawdown=_band(shuffled_drawdown),
        shuffled_final_equity=_band(shuffled_final),
        resampled_max_drawdown=_band(resampled_drawdown),
        resampled_final_equity=_band(resampled_final),
    )
