"""Benchmark: our backtest engine against backtesting.py and vectorbt (MA cross 10/30, long only).

Every engine does the whole job, from candles to a trade list and statistics, with the same
trading rules (all in, no slippage, fills at the next open, 10,000 cash; the fee below):

- ``ours``: ``strategies.registry`` ``ma_cross`` {fast 10, slow 30, sma} ``.positions`` +
  ``backtests.engine.simulate`` (trades, equity curve and every metric);
- ``ours+sl/tp``: the same with a 0.2 % stop-loss and a 0.4 % take-profit;
- ``numpy``: the floor: numpy moving averages, the position shifted one candle and close-to-close
  returns compounded; no fills, fees, trades or metrics;
- ``backtesting.py``: ``FractionalBacktest`` (satoshi units) with a strategy whose ``self.I``
  indicator is "fast SMA above slow SMA", ``run()`` with its stats;
- ``vectorbt``: ``vbt.MA`` signals shifted one candle, ``Portfolio.from_signals(price=open,
  size=inf)`` and ``.stats()``.

Sizes: ``real`` is the shipped BTC/USDT 5m data (10,999 candles), with a 0.1 % fee a side (the
run tests/backtests/test_reference_engines.py checks); numbers are seeded synthetic one-minute
random walks (``np.random.default_rng(42)``) without fees. On them MA cross 10/30 makes a round
trip every ~50 candles; at 0.1 % the 19,586 round trips of 1M candles would leave 4e-14 of the
10,000, far below one satoshi's worth, where backtesting.py and vectorbt stop trading and the
engines would no longer do the same work. A fee is a multiplication per fill in every engine: it
does not change the cost.

The input is built once per size in each engine's own format, outside the timing. Runs are
interleaved (ours, ours+sl/tp, numpy, backtesting.py, vectorbt, ours, ...); each engine gets one
untimed warm-up (vectorbt's numba JIT), except backtesting.py, which has nothing to warm and runs
at most twice above 100k candles. The table shows the best run, candles a second, and ``÷ ours``
= seconds / ours' seconds.

Memory is measured in a fresh subprocess per engine and size that imports the engine, builds the
input, and runs it once: ``peak RSS`` is that process's high-water mark (interpreter and imports
included), ``run +RSS`` how much the run raised it above the mark before the run, and ``traced``
the peak that tracemalloc sees in a second run (numpy and Python allocations; numba's arrays in
vectorbt are invisible to it; skipped for backtesting.py above 100k candles, where tracing its
per-candle Python loop takes minutes).

Cold start: a fresh ``python`` process that imports everything and runs its first backtest of 100k
synthetic candles, timed from the parent as the wall time from spawn to exit (best of three; one
for vectorbt, whose JIT takes tens of seconds: some of its numba functions, such as
``simulate_from_signals_nb`` and ``reduce_mapped_nb``, are jitted without ``cache=True``, so every
new process compiles them again). For vectorbt also with an empty numba cache
(``NUMBA_CACHE_DIR``): the very first run after installing it.

``trades`` and ``final $`` show that the engines agree. Where a position is still open after the
last candle, ours closes it at the last close and counts it, paying the exit fee (fill model
rule 7); backtesting.py leaves it out of its trades, and both peers leave that fee out of their
final equity. backtesting.py also sizes in whole satoshis (a fraction of a cent over a run).

The peers are optional (``pip install -e '.[compare]'``); without them the bench says which were
skipped. The machine is shared and noisy: compare ratios, not seconds.

    .venv/bin/python bench/backtest.py [--sizes real 100000 1000000] [--repeat 7] [--skip-slow]
        [--no-memory] [--no-cold-start]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar, for it and children

REAL = "real"
SAMPLE = ROOT / "markets" / "data" / "btc_usdt_5m.csv.gz"
MINUTE = 60_000
FAST, SLOW = 10, 30
CASH = 10_000.0
REAL_FEE = 0.001  # 0.1 % a side on the real candles, as in tests/backtests/test_reference_engines
SYNTHETIC_FEE = 0.0  # see the module docstring
STOP_LOSS, TAKE_PROFIT = 0.002, 0.004
SATOSHI = 1e-8
SLOW_ABOVE = 100_000  # backtesting.py above this many candles: at most two runs, no tracing
COLD_START_SIZE = 100_000
COLD_START_RUNS = 3  # vectorbt: one; its JIT takes tens of seconds and varies far less

Candles = dict[str, np.ndarray]
Summary = tuple[int | None, float | None]  # trades, final equity


# --- candles ---------------------------------------------------------------------------------


def random_walk(size: int) -> Candles:
    """Seeded synthetic one-minute candles around 100 (the same series for every engine)."""
    rng = np.random.default_rng(42)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, size)))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.0005, (2, size)))
    return {
        "open_time": 1_600_000_000_000 + MINUTE * np.arange(size, dtype=np.int64),
        "open": open_,
        "high": np.maximum(open_, close) * (1.0 + wick[0]),
        "low": np.minimum(open_, close) * (1.0 - wick[1]),
        "close": close,
        "volume": rng.uniform(1.0, 10.0, size),
    }


def real_candles() -> Candles:
    import pandas as pd

    table = pd.read_csv(SAMPLE)
    candles = {name: table[name].to_numpy(dtype=np.float64) for name in table.columns}
    candles["open_time"] = table["timestamp"].to_numpy(dtype=np.int64)
    del candles["timestamp"]
    return candles


def load(size: str) -> Candles:
    return real_candles() if size == REAL else random_walk(int(size))


def fee_for(size: str) -> float:
    return REAL_FEE if size == REAL else SYNTHETIC_FEE


def spacing_minutes(candles: Candles) -> int:
    return int(np.median(np.diff(candles["open_time"])) // MINUTE)


# --- engines: prepare (untimed, the engine's own input format) and run (timed) ---------------


def prepare_ours(candles: Candles) -> Any:
    import pandas as pd

    return pd.DataFrame(candles)[["open_time", "open", "high", "low", "close", "volume"]]


def run_ours(frame: Any, fee: float, *, stops: bool = False) -> Summary:
    from backtests.engine import BacktestSettings, simulate
    from strategies import registry

    strategy = registry.active().create("ma_cross", {"fast": FAST, "slow": SLOW, "ma": "sma"})
    settings = BacktestSettings(
        initial_cash=CASH,
        fee_rate=fee,
        stop_loss=STOP_LOSS if stops else None,
        take_profit=TAKE_PROFIT if stops else None,
    )
    result = simulate(frame, strategy.positions(frame), settings)
    return result.metrics["trade_count"], result.metrics["final_equity"]


def run_ours_with_stops(frame: Any, fee: float) -> Summary:
    return run_ours(frame, fee, stops=True)


def prepare_numpy(candles: Candles) -> np.ndarray:
    return candles["close"]


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    sums = np.cumsum(values)
    mean = np.full(values.size, np.nan)
    mean[window - 1 :] = (sums[window - 1 :] - np.concatenate(([0.0], sums[:-window]))) / window
    return mean


def run_numpy(close: np.ndarray, fee: float) -> Summary:
    target = (moving_average(close, FAST) > moving_average(close, SLOW)).astype(np.int8)
    position = np.concatenate(([0], target[:-1]))
    returns = np.concatenate(([0.0], np.diff(close) / close[:-1]))
    np.cumprod(1.0 + position * returns)
    return None, None


def candle_index(candles: Candles) -> Any:
    import pandas as pd

    # Naive UTC: vectorbt turns a tz-aware index into an object array of Timestamps again and
    # again in .stats(), which takes seconds.
    return pd.DatetimeIndex(pd.to_datetime(candles["open_time"], unit="ms"))


def prepare_backtesting(candles: Candles) -> Any:
    import importlib

    import pandas as pd

    importlib.import_module("backtesting.lib")  # its import (bokeh & co.) outside the timing
    backtesting_strategy()

    columns = {name.capitalize(): candles[name] for name in ("open", "high", "low", "close")}
    return pd.DataFrame({**columns, "Volume": candles["volume"]}, index=candle_index(candles))


def fast_above_slow(close: np.ndarray) -> np.ndarray:
    import pandas as pd

    series = pd.Series(close)
    return (series.rolling(FAST).mean() > series.rolling(SLOW).mean()).to_numpy()


_bt_strategy: type | None = None


def backtesting_strategy() -> type:
    """The long-only MA cross as a backtesting.py strategy (built once, on first use)."""
    global _bt_strategy
    if _bt_strategy is None:
        from backtesting import Strategy

        class MaCross(Strategy):
            def init(self) -> None:
                self.above = self.I(fast_above_slow, self.data.Close)

            def next(self) -> None:
                if self.above[-1]:
                    if not self.position:
                        self.buy()
                elif self.position:
                    self.position.close()

        _bt_strategy = MaCross
    return _bt_strategy


def run_backtesting(data: Any, fee: float) -> Summary:
    import warnings

    from backtesting.lib import FractionalBacktest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = FractionalBacktest(
            data,
            backtesting_strategy(),
            cash=CASH,
            commission=fee,
            trade_on_close=False,
            fractional_unit=SATOSHI,
        )
        stats = backtest.run()
    return int(stats["# Trades"]), float(stats["Equity Final [$]"])


def prepare_vectorbt(candles: Candles) -> Any:
    import pandas as pd

    index = candle_index(candles)
    return (
        pd.Series(candles["open"], index=index),
        pd.Series(candles["close"], index=index),
        f"{spacing_minutes(candles)}min",
    )


def run_vectorbt(prepared: Any, fee: float) -> Summary:
    import vectorbt as vbt

    open_, close, freq = prepared
    fast, slow = vbt.MA.run(close, FAST), vbt.MA.run(close, SLOW)
    held = fast.ma_above(slow).shift(1, fill_value=False)  # signal at a close, fill next open
    portfolio = vbt.Portfolio.from_signals(
        close,
        entries=held,
        exits=~held,
        price=open_,
        fees=fee,
        size=np.inf,  # all the cash, fee included, like ours
        init_cash=CASH,
        freq=freq,
    )
    stats = portfolio.stats()
    return int(stats["Total Trades"]), float(stats["End Value"])


@dataclass(frozen=True)
class Engine:
    name: str
    module: str | None  # the optional package it needs
    prepare: Callable[[Candles], Any]
    run: Callable[[Any, float], Summary]
    warm_up: bool = True

    def available(self) -> bool:
        return self.module is None or importlib.util.find_spec(self.module) is not None


OURS = "ours"
BACKTESTING = "backtesting.py"
VECTORBT = "vectorbt"
ENGINES = {
    engine.name: engine
    for engine in (
        Engine(OURS, None, prepare_ours, run_ours),
        Engine("ours+sl/tp", None, prepare_ours, run_ours_with_stops),
        Engine("numpy", None, prepare_numpy, run_numpy),
        Engine(BACKTESTING, "backtesting", prepare_backtesting, run_backtesting, warm_up=False),
        Engine(VECTORBT, "vectorbt", prepare_vectorbt, run_vectorbt),
    )
}


# --- measuring -------------------------------------------------------------------------------


def max_rss_mib() -> float:
    """This process's peak resident set size so far.

    Linux's ``VmHWM`` belongs to the process image, so it starts afresh at ``exec``; the
    ``ru_maxrss`` of a child started with ``subprocess`` also counts the parent it was forked
    from, and the parent holds every engine and its input.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_memory(engine_name: str, size: str, trace: bool) -> None:
    """In a fresh process: build the input, run once, report the RSS high-water marks."""
    engine = ENGINES[engine_name]
    prepared = engine.prepare(load(size))
    before = max_rss_mib()
    engine.run(prepared, fee_for(size))
    report: dict[str, float | None] = {"before": before, "peak": max_rss_mib(), "traced": None}
    if trace:
        tracemalloc.start()
        engine.run(prepared, fee_for(size))
        report["traced"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    print(json.dumps(report))


def child_cold_start(engine_name: str) -> None:
    """In a fresh process (timed by the parent): imports, input, the first backtest."""
    engine = ENGINES[engine_name]
    engine.run(engine.prepare(random_walk(COLD_START_SIZE)), SYNTHETIC_FEE)


def spawn(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return time.perf_counter() - started, done.stdout


def memory_of(engine: str, size: str) -> dict[str, float | None]:
    trace = not (engine == BACKTESTING and size != REAL and int(size) > SLOW_ABOVE)
    _, output = spawn(["--child-memory", engine, size, *(["--trace"] if trace else [])])
    return json.loads(output.strip().splitlines()[-1])


def timed(call: Callable[[], Summary]) -> tuple[float, Summary]:
    started = time.perf_counter()
    summary = call()
    return time.perf_counter() - started, summary


def bench_size(
    candles: Candles, fee: float, engines: list[Engine], repeat: int
) -> dict[str, dict[str, Any]]:
    """Interleaved best-of-``repeat`` seconds and the run's summary for each engine."""
    big = candles["close"].size > SLOW_ABOVE
    inputs = {engine.name: engine.prepare(candles) for engine in engines}
    rows: dict[str, dict[str, Any]] = {}
    for engine in engines:
        if engine.warm_up:
            engine.run(inputs[engine.name], fee)
        rows[engine.name] = {"seconds": [], "summary": None}
    for round_ in range(repeat):
        for engine in engines:
            if engine.name == BACKTESTING and big and round_ >= 2:
                continue
            seconds, summary = timed(lambda engine=engine: engine.run(inputs[engine.name], fee))
            rows[engine.name]["seconds"].append(seconds)
            rows[engine.name]["summary"] = summary
    return rows


def print_size_table(
    size: str, rows: dict[str, dict[str, Any]], memory: dict[str, dict[str, Any]], candles: int
) -> None:
    label = f"{candles:,} " + ("real" if size == REAL else "synth")
    fee = f"{fee_for(size):.1%}"
    ours = min(rows[OURS]["seconds"])
    for name, row in rows.items():
        seconds = min(row["seconds"])
        trades, final = row["summary"]
        mem = memory.get(name, {})
        print(
            f"{label:>15} {fee:>5} {name:<15} {_text(trades, ',d'):>7} {_text(final, ',.2f'):>12} "
            f"{seconds:>9.4f} {candles / seconds:>13,.0f} {seconds / ours:>7.1f}x "
            f"{_text(mem.get('peak'), '.0f'):>8} {_text(_raised(mem), '.0f'):>8} "
            f"{_text(mem.get('traced'), '.1f'):>8} {len(row['seconds']):>5}"
        )
    ratios = [
        f"{name}/ours = {min(rows[name]['seconds']) / ours:.1f}x"
        for name in (BACKTESTING, VECTORBT)
        if name in rows
    ]
    if ratios:
        print(f"{'':>21} {', '.join(ratios)}")
    print()


def _raised(memory: dict[str, Any]) -> float | None:
    if memory.get("peak") is None:
        return None
    return float(memory["peak"] - memory["before"])


def _text(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def cold_starts(engines: list[Engine]) -> None:
    print(f"\ncold start: a fresh process, imports + first backtest of {COLD_START_SIZE:,} candles")
    print(f"{'engine':<32} {'best s':>8} {'first s':>8} {'runs':>5}")
    names = [engine.name for engine in engines if engine.name in (OURS, BACKTESTING, VECTORBT)]
    variants = [(name, name, False) for name in names]
    if VECTORBT in names:
        variants.append((f"{VECTORBT} (empty numba cache)", VECTORBT, True))
    for label, name, empty_numba_cache in variants:
        walls = []
        for _ in range(1 if name == VECTORBT else COLD_START_RUNS):
            with tempfile.TemporaryDirectory(prefix="bench-numba-") as empty:
                env = {**os.environ, "NUMBA_CACHE_DIR": empty} if empty_numba_cache else None
                wall, _ = spawn(["--child-cold", name], env=env)
            walls.append(wall)
        print(f"{label:<32} {min(walls):>8.2f} {walls[0]:>8.2f} {len(walls):>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=[REAL, "100000", "1000000"])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--skip-slow", action="store_true", help="no backtesting.py above 100k")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS subprocesses")
    parser.add_argument("--no-cold-start", action="store_true")
    parser.add_argument(
        "--child-memory", nargs=2, metavar=("ENGINE", "SIZE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-cold", metavar="ENGINE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        child_memory(*args.child_memory, trace=args.trace)
        return
    if args.child_cold:
        child_cold_start(args.child_cold)
        return

    available = [engine for engine in ENGINES.values() if engine.available()]
    skipped = [f"{e.name} (pip install {e.module})" for e in ENGINES.values() if not e.available()]
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {_peer_versions()}")
    if skipped:
        print(f"peers skipped, not installed: {', '.join(skipped)}")
    print(
        f"{'candles':>15} {'fee':>5} {'engine':<15} {'trades':>7} {'final $':>12} {'seconds':>9} "
        f"{'candles/s':>13} {'÷ ours':>8} {'peak RSS':>8} {'run +RSS':>8} {'traced':>8} "
        f"{'runs':>5}"
    )
    print(f"{'(best)':>71} {'MiB':>31} {'MiB':>8} {'MiB':>8}")
    for size in args.sizes:
        candles = load(size)
        too_slow = args.skip_slow and candles["close"].size > SLOW_ABOVE
        engines = [e for e in available if not (too_slow and e.name == BACKTESTING)]
        rows = bench_size(candles, fee_for(size), engines, args.repeat)
        memory = {} if args.no_memory else {e.name: memory_of(e.name, size) for e in engines}
        print_size_table(size, rows, memory, candles["close"].size)
    if not args.no_cold_start:
        cold_starts(available)


def _peer_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("pandas", "backtesting", "vectorbt", "numba"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


if __name__ == "__main__":
    main()
