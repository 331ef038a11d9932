"""Benchmark: a 100-combination MA Cross sweep on one worker process and on two, against the
same combinations computed in-process and vectorbt's vectorised sweep of the same grid.

It sets up its own stack: a throwaway SQLite database (``DATABASE_URL``, if set, is used
instead) migrated from scratch, the embedded Redis (or ``REDIS_URL``), and a seeded synthetic
random walk of ``--candles`` one-minute candles stored as ``Candle`` rows (bitget BTC/USDT 1m,
in the year 2000, removed at the end). Each combination then costs some ms of CPU (the
strategy plus the engine on every candle), so the sweep is CPU-bound.

It starts real ``celery worker`` processes on a queue of its own (one set of one worker, one set
of two; ``--pool solo`` or ``prefork`` with ``--concurrency 1``), warms each set and each peer up
with a small sweep, and then times ``--rounds`` rounds; a round is the 100-combination sweep
(fast 5..50 x slow 60..240, every combination valid) on each set, alternating which set goes
first, then each peer. A sweep's time runs from ``sweep_create`` to the sweep being ``done`` in
the database (every combination recorded and the sweep closed), with its combinations sent in
batches (``SWEEP_BATCH_SIZE``, ``backtests.services.sweeps.batch_size``).

The peers, in this process, from the candles read once (``candle read``: what each worker also
does once per sweep):

- ``in-process, serial``: the same combinations one after the other (no database, broker or
  worker): the floor for one core;
- ``vectorbt, vectorised``: vectorbt's sweep of the same grid, a column per combination, driven
  as bench/backtest.py drives it (``vbt.MA`` signals shifted one candle, ``from_signals`` at the
  open with all the cash, the sweep's 0.1 % fee), then the metrics a ranking reads (total
  return, Sharpe, Sortino, Calmar, drawdown, trades, win rate, profit factor, expectancy) for
  every column at once. Optional (``make install-compare``): without vectorbt the row says it is
  skipped. Its total returns are checked against the in-process ones.

It prints the best and median seconds of each, the CPU time (median) the workers used during a
sweep, or this process during a peer's run, and that over the wall time (``cores used``: below
the worker count when other processes hold the cores), how the combinations were spread over the
workers, and the ratios, each from the same run: one worker's rate over the in-process rate
(in-process seconds / one worker's seconds; also in CPU seconds, which a busy machine disturbs
less), two workers over one, vectorbt over the in-process sweep and over one worker. The machine
is shared and noisy: compare ratios, not seconds. A ``DATABASE_URL`` database must exist; it is
migrated, and the bench refuses to run if it already holds candles where it stores its own.

    .venv/bin/python bench/sweep.py [--candles 200000] [--rounds 3] [--pool solo]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/benchdb REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/sweep.py
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXCHANGE, SYMBOL, TIMEFRAME = "bitget", "BTC/USDT", "1m"
START = datetime(2000, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(60, 241, 20))}  # 10 x 10, all valid
WARM_UP_GRID = {"fast": [5], "slow": [60, 80]}
POLL_SECONDS = 0.02


def synthetic_candles(size: int) -> dict[str, np.ndarray]:
    """A seeded random walk (the same as bench/backtest_engine.py's)."""
    rng = np.random.default_rng(42)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, size)))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.0005, (2, size)))
    start_ms = int(START.timestamp() * 1000)
    return {
        "open_time": start_ms + 60_000 * np.arange(size, dtype=np.int64),
        "open": open_,
        "high": np.maximum(open_, close) * (1.0 + wick[0]),
        "low": np.minimum(open_, close) * (1.0 - wick[1]),
        "close": close,
        "volume": rng.uniform(1.0, 10.0, size),
    }


def store_candles(size: int) -> None:
    from markets.models import Candle

    existing = Candle.objects.filter(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, open_time__lt=_end_ms(size)
    )
    if existing.exists():
        raise SystemExit("this database already holds candles where the bench stores its own")
    columns = synthetic_candles(size)
    price = ("open", "high", "low", "close", "volume")
    rows = (
        Candle(
            exchange=EXCHANGE,
            symbol=SYMBOL,
            timeframe=TIMEFRAME,
            open_time=int(columns["open_time"][i]),
            **{name: Decimal(f"{columns[name][i]:.8f}") for name in price},
        )
        for i in range(size)
    )
    Candle.objects.bulk_create(rows, batch_size=5000)


def remove_candles(size: int) -> None:
    from markets.models import Candle

    Candle.objects.filter(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, open_time__lt=_end_ms(size)
    ).delete()


def _end_ms(size: int) -> int:
    return int((START + size * MINUTE).timestamp() * 1000)


@dataclass
class WorkerSet:
    name: str
    queue: str
    processes: list[subprocess.Popen[bytes]]
    hostnames: list[str]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the workers and their pool processes so far (Linux)."""
        pids = [process.pid for process in self.processes]
        for pid in list(pids):
            pids += map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
        ticks = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


def start_worker_set(
    name: str, count: int, *, env: dict[str, str], pool: str, log_dir: Path
) -> WorkerSet:
    """``count`` worker processes consuming a queue of their own, once they answer a ping."""
    from tradingbot.celery import app

    queue = f"{env['BACKTESTS_QUEUE']}-{count}"
    pool_args = ["--pool", "solo"] if pool == "solo" else ["--pool", pool, "--concurrency", "1"]
    hostnames = [f"{queue}-{index}@bench" for index in range(count)]
    command = [
        *(sys.executable, "-m", "celery", "-A", "tradingbot", "worker", *pool_args),
        *("--queues", queue, "--without-mingle", "--without-gossip", "--loglevel", "WARNING"),
    ]
    processes = [
        subprocess.Popen(
            [*command, "--hostname", hostname],
            cwd=ROOT,
            env={**env, "BACKTESTS_QUEUE": queue},
            stdout=(log_dir / f"{hostname}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for hostname in hostnames
    ]
    waiting = set(hostnames)
    deadline = time.monotonic() + 60
    while waiting:
        for reply in app.control.ping(destination=list(waiting), timeout=0.5):
            waiting -= set(reply)
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            raise SystemExit(f"workers did not start; see the logs in {log_dir}")
    return WorkerSet(name, queue, processes, hostnames)


@dataclass
class SweepTiming:
    seconds: float
    cpu_seconds: float  # of the workers, together
    per_worker: list[int]


def timed_sweep(
    workers: WorkerSet, user: Any, grid: dict[str, list[int]], size: int
) -> SweepTiming:
    """Seconds from ``sweep_create`` to the sweep closed, and combinations per worker."""
    from django.conf import settings

    from backtests import services
    from backtests.models import ACTIVE_STATUSES, RunStatus, Sweep
    from backtests.spec import RunSpec

    settings.BACKTESTS_QUEUE = workers.queue
    cpu_before = workers.cpu_seconds()
    started = time.perf_counter()
    spec = RunSpec(
        strategy="ma_cross",
        params={"ma": "sma"},
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        initial_cash=Decimal(10_000),
        fee_rate=Decimal("0.001"),
    )
    sweep = services.sweep_create(
        user=user,
        spec=spec,
        start=START,
        end=START + size * MINUTE,
        grid=grid,
        rank_by="sharpe",
    )
    while (status := Sweep.objects.get(pk=sweep.pk).status) in ACTIVE_STATUSES:
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    cpu_seconds = workers.cpu_seconds() - cpu_before
    sweep.refresh_from_db()
    if status != RunStatus.DONE or sweep.done_count != sweep.combination_count:
        raise SystemExit(f"sweep {sweep.pk} ended {status}: {sweep.error}")
    spread = Counter(sweep.runs.values_list("worker", flat=True))
    per_worker = [spread.get(hostname, 0) for hostname in workers.hostnames]
    return SweepTiming(seconds, cpu_seconds, per_worker)


def read_candles(size: int) -> tuple[Any, float]:
    """The candles as a worker reads them (one range read), and the seconds it took."""
    from markets.selectors import candles_frame

    started = time.perf_counter()
    candles = candles_frame(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        start_ms=int(START.timestamp() * 1000),
        end_ms=_end_ms(size),
    )
    return candles, time.perf_counter() - started


def combinations(grid: dict[str, list[int]]) -> list[tuple[int, int]]:
    return [(fast, slow) for fast in grid["fast"] for slow in grid["slow"]]


@dataclass
class PeerRun:
    seconds: float
    cpu_seconds: float  # of this process
    total_return: dict[tuple[int, int], float]  # by (fast, slow)


def in_process_run(candles: Any, grid: dict[str, list[int]]) -> PeerRun:
    """The combinations computed serially in this process from one in-memory frame: the peer."""
    from backtests.engine import BacktestSettings
    from backtests.runner import run_backtest
    from strategies.registry import active

    settings = BacktestSettings(initial_cash=10_000.0, fee_rate=0.001)  # the sweep's
    returns = {}
    started, cpu = time.perf_counter(), time.process_time()
    for fast, slow in combinations(grid):
        strategy = active().create("ma_cross", {"fast": fast, "slow": slow, "ma": "sma"})
        returns[fast, slow] = run_backtest(candles, strategy, settings).metrics["total_return"]
    return PeerRun(time.perf_counter() - started, time.process_time() - cpu, returns)


def vectorbt_available() -> bool:
    return importlib.util.find_spec("vectorbt") is not None


def vectorbt_run(candles: Any, grid: dict[str, list[int]]) -> PeerRun:
    """vectorbt's vectorised sweep of the same grid: one column per combination, as
    bench/backtest.py drives it (SMA cross, signals shifted one candle, filled at the open with
    all the cash, the sweep's fee), then the metrics a ranking reads, for every column at once."""
    import pandas as pd
    import vectorbt as vbt

    index = pd.DatetimeIndex(pd.to_datetime(candles["open_time"].to_numpy(), unit="ms"))
    close = pd.Series(candles["close"].to_numpy(), index=index)
    open_ = pd.Series(candles["open"].to_numpy(), index=index)
    pairs = combinations(grid)
    started, cpu = time.perf_counter(), time.process_time()
    fast = vbt.MA.run(close, [pair[0] for pair in pairs], short_name="fast")
    slow = vbt.MA.run(close, [pair[1] for pair in pairs], short_name="slow")
    held = fast.ma_above(slow).shift(1, fill_value=False)  # signal at a close, fill next open
    portfolio = vbt.Portfolio.from_signals(
        close,
        entries=held,
        exits=~held,
        price=open_,
        fees=0.001,
        size=np.inf,
        init_cash=10_000.0,
        freq="1min",
    )
    total_return = portfolio.total_return()
    for metric in (
        portfolio.sharpe_ratio,
        portfolio.sortino_ratio,
        portfolio.calmar_ratio,
        portfolio.max_drawdown,
        portfolio.trades.count,
        portfolio.trades.win_rate,
        portfolio.trades.profit_factor,
        portfolio.trades.expectancy,
    ):
        metric()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return PeerRun(seconds, cpu, {pair: float(value) for pair, value in total_return.items()})


PARALLEL_PROBE = """
import sys, time
sys.path.insert(0, {root!r})
import pandas as pd
from bench.sweep import GRID, synthetic_candles
from backtests.engine import BacktestSettings
from backtests.runner import run_backtest
from strategies.registry import active
candles = pd.DataFrame(synthetic_candles({size}))
settings = BacktestSettings(initial_cash=10_000.0, fee_rate=0.001)
started = time.perf_counter()
for fast in GRID["fast"][:4]:
    for slow in GRID["slow"]:
        run_backtest(candles, active().create("ma_cross", {{"fast": fast, "slow": slow}}), settings)
print(time.perf_counter() - started)
"""


def machine_speedup(size: int, rounds: int) -> float:
    """What two processes get out of this machine: the same CPU-bound work (40 combinations, in
    memory, no database or broker) in one process, then in two at once; the median ratio of
    their throughputs. A machine with two free cores gives about 2; a shared one less."""
    code = PARALLEL_PROBE.format(root=str(Path(__file__).resolve().parent.parent), size=size)

    def compute_seconds(copies: int) -> float:
        processes = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            for _ in range(copies)
        ]
        return max(float(process.communicate()[0]) for process in processes)

    ratios = []
    for _ in range(rounds):
        alone, together = compute_seconds(1), compute_seconds(2)
        ratios.append(2 * alone / together)
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", choices=("solo", "prefork"), default="solo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, work_dir: Path) -> None:
    from _support import django_for_bench  # bench/ is on the path of a bench run only

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env, embedded = django_for_bench(work_dir, BACKTESTS_QUEUE=queue)
    logging.disable(logging.INFO)  # the services' INFO lines would bury the table
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import User

    worker_sets: list[WorkerSet] = []
    user = None
    try:
        call_command("migrate", verbosity=0, interactive=False)
        started = time.perf_counter()
        store_candles(args.candles)
        stored = time.perf_counter() - started
        user = User.objects.create_user(f"bench-{uuid.uuid4().hex[:8]}@example.com")
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        print(
            f"database {db}, redis {'embedded' if embedded else settings.REDIS_URL}, "
            f"{args.candles:,} candles (stored in {stored:.1f} s), {args.pool} pool, "
            f"{len(GRID['fast']) * len(GRID['slow'])} combinations, {args.rounds} rounds"
        )
        for name, count in (("1 worker", 1), ("2 workers", 2)):
            worker_sets.append(
                start_worker_set(name, count, env=env, pool=args.pool, log_dir=work_dir)
            )
        candles, read = read_candles(args.candles)
        peers = warm_up(worker_sets, user, candles, args.candles)
        timings: dict[str, list[SweepTiming]] = {workers.name: [] for workers in worker_sets}
        for round_ in range(args.rounds):
            order = worker_sets if round_ % 2 == 0 else worker_sets[::-1]
            for workers in order:
                timings[workers.name].append(timed_sweep(workers, user, GRID, args.candles))
            for name, peer in PEERS.items():
                if name in peers:
                    peers[name].append(peer(candles, GRID))
        report(timings, peers, read=read)
        print(
            "the machine itself, two CPU-bound processes / one (same run): "
            f"{machine_speedup(args.candles, args.rounds):.2f}x"
        )
    finally:
        for workers in worker_sets:
            workers.stop()
        if user is not None:
            user.delete()  # and its sweeps
        remove_candles(args.candles)
        if embedded is not None:
            embedded.terminate()
            embedded.wait(timeout=10)


IN_PROCESS, VECTORBT = "in-process, serial", "vectorbt, vectorised"
PEERS = {IN_PROCESS: in_process_run, VECTORBT: vectorbt_run}


def warm_up(
    worker_sets: list[WorkerSet], user: Any, candles: Any, size: int
) -> dict[str, list[PeerRun]]:
    """An untimed small sweep on each worker set and each peer (vectorbt: numba's JIT); the
    peers to time, without vectorbt when it is not installed."""
    for workers in worker_sets:
        timed_sweep(workers, user, WARM_UP_GRID, size)
    peers: dict[str, list[PeerRun]] = {IN_PROCESS: []}
    if vectorbt_available():
        peers[VECTORBT] = []
    for name in peers:
        PEERS[name](candles.iloc[:5000], WARM_UP_GRID)
    return peers


def report(
    timings: dict[str, list[SweepTiming]], peers: dict[str, list[PeerRun]], *, read: float
) -> None:
    count = len(combinations(GRID))
    print(
        f"\n{'configuration':<22} {'best s':>7} {'median s':>9} {'combos/s':>9} "
        f"{'CPU s':>7} {'cores used':>11}  combinations per worker"
    )
    best: dict[str, float] = {}
    median: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for name in PEERS:
        if name not in peers:
            print(f"{name:<22} skipped: vectorbt is not installed (make install-compare)")
            continue
        runs = peers[name]
        seconds = [run.seconds for run in runs]
        best[name], median[name] = min(seconds), statistics.median(seconds)
        cpu[name] = statistics.median(run.cpu_seconds for run in runs)
        cores = statistics.median(run.cpu_seconds / run.seconds for run in runs)
        print(
            f"{name:<22} {best[name]:>7.2f} {median[name]:>9.2f} "
            f"{count / median[name]:>9.1f} {cpu[name]:>7.2f} {cores:>11.2f}"
        )
    print(f"{'candle read (once)':<22} {read:>7.2f}")
    for name, runs in timings.items():
        seconds = [run.seconds for run in runs]
        best[name], median[name] = min(seconds), statistics.median(seconds)
        cpu[name] = statistics.median(run.cpu_seconds for run in runs)
        # Below the worker count when other processes take the cores (a busy machine).
        cores = statistics.median(run.cpu_seconds / run.seconds for run in runs)
        spread = ", ".join("/".join(map(str, run.per_worker)) for run in runs)
        print(
            f"{name:<22} {best[name]:>7.2f} {median[name]:>9.2f} "
            f"{count / median[name]:>9.1f} {cpu[name]:>7.2f} {cores:>11.2f}  {spread}"
        )
    ratios(best, median, cpu)
    if VECTORBT in peers:
        agreement(peers[IN_PROCESS][-1], peers[VECTORBT][-1])
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def ratios(best: dict[str, float], median: dict[str, float], cpu: dict[str, float]) -> None:
    def both(numerator: str, denominator: str) -> str:
        return (
            f"best {best[numerator] / best[denominator]:.2f}x, "
            f"median {median[numerator] / median[denominator]:.2f}x"
        )

    one, two = "1 worker", "2 workers"
    print(f"\nspeed-up 2 workers / 1 worker: {both(one, two)}")
    print(
        f"1 worker's rate / in-process serial's (in-process s / 1 worker s): "
        f"{both(IN_PROCESS, one)} (the rest is the queue, database, events and candle read); "
        f"in CPU seconds (median) {cpu[IN_PROCESS] / cpu[one]:.2f}x"
    )
    if VECTORBT in best:
        print(f"vectorbt s / in-process serial s: {both(VECTORBT, IN_PROCESS)}")
        print(f"vectorbt s / 1 worker s: {both(VECTORBT, one)}")


def agreement(ours: PeerRun, vectorbt: PeerRun) -> None:
    """That both did the same work: their total returns, combination by combination."""
    gap = max(
        abs(ours.total_return[pair] - vectorbt.total_return[pair]) for pair in ours.total_return
    )
    best_ours = max(ours.total_return, key=ours.total_return.__getitem__)
    best_vbt = max(vectorbt.total_return, key=vectorbt.total_return.__getitem__)
    print(
        f"total return, in-process vs vectorbt: largest difference {gap:.2e}; best (fast, slow) "
        f"{best_ours} and {best_vbt}"
    )


if __name__ == "__main__":
    main()
