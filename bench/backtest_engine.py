"""Benchmark: the backtest engine (simulate + trades + all metrics) against bare numpy.

On a seeded synthetic random walk (``np.random.default_rng(42)``) of 10k, 100k and 1M one-minute
candles, with MA-cross 10/30 targets computed here with numpy (long when the fast mean is above
the slow one, short below, flat while warming up), it times

- ``engine``: ``backtests.engine.simulate`` with the default settings (0.1 % fee), which builds
  the trade list, the equity curve and every metric, and the same with a 0.2 % stop-loss and a
  0.4 % take-profit (``engine+sl/tp``);
- ``numpy``: the peer, in the same run: positions from the shifted signal, per-candle returns *
  position, compounded to an equity curve; no fills, fees, trades or metrics;

and prints the best of several runs in seconds, candles a second, the peak memory the call
allocates (tracemalloc, measured in a separate run so it does not slow the timed ones), and the
ratio engine / numpy. The machine is shared and noisy: compare ratios, not seconds.

    .venv/bin/python bench/backtest_engine.py [--sizes 10000 100000 1000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from backtest import FAST, SLOW, moving_average, random_walk  # bench/backtest.py

from backtests.engine import BacktestSettings, simulate


def ma_cross(close: np.ndarray) -> np.ndarray:
    fast, slow = moving_average(close, FAST), moving_average(close, SLOW)
    target = np.where(fast > slow, 1, -1).astype(np.int8)
    target[np.isnan(slow)] = 0
    return target


def numpy_peer(candles: dict[str, np.ndarray], target: np.ndarray) -> np.ndarray:
    close = candles["close"]
    position = np.concatenate(([0], target[:-1]))
    returns = np.concatenate(([0.0], np.diff(close) / close[:-1]))
    return 10_000.0 * np.cumprod(1.0 + position * returns)


def best_seconds(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def peak_mib(call: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    plain = BacktestSettings()
    stops = BacktestSettings(stop_loss=0.002, take_profit=0.004)

    print(
        f"{'candles':>9} {'run':<13} {'trades':>7} {'seconds':>9} {'candles/s':>12} "
        f"{'peak MiB':>9} {'vs numpy':>9}"
    )
    for size in args.sizes:
        candles = random_walk(size)
        target = ma_cross(candles["close"])
        runs: list[tuple[str, Callable[[], Any]]] = [
            ("numpy", partial(numpy_peer, candles, target)),
            ("engine", partial(simulate, candles, target, plain)),
            ("engine+sl/tp", partial(simulate, candles, target, stops)),
        ]
        peer = 0.0
        for name, call in runs:
            seconds = best_seconds(call, args.repeat)
            peer = peer or seconds
            result = call()
            trades = len(result.trades) if name != "numpy" else 0
            print(
                f"{size:>9,} {name:<13} {trades:>7,} {seconds:>9.4f} {size / seconds:>12,.0f} "
                f"{peak_mib(call):>9.1f} {seconds / peer:>8.1f}x"
            )
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS: {max_rss:.0f} MiB")


if __name__ == "__main__":
    main()
