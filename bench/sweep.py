"""Benchmark: a 100-combination MA Cross sweep on one worker process against two.

It sets up its own stack: a throwaway SQLite database (``DATABASE_URL``, if set, is used
instead) migrated from scratch, the embedded Redis (or ``REDIS_URL``), and a seeded synthetic
random walk of ``--candles`` one-minute candles stored as ``Candle`` rows (bitget BTC/USDT 1m,
in the year 2000, removed at the end). Each combination then costs some tens of ms of CPU (the
strategy plus the engine on every candle), so the sweep is CPU-bound.

It starts real ``celery worker`` processes on a queue of its own (one set of one worker, one set
of two; ``--pool solo`` or ``prefork`` with ``--concurrency 1``), warms each set up with a small
sweep, and then times ``--rounds`` rounds of the 100-combination sweep (fast 5..50 x slow
60..240, every combination valid) on each set, alternating which set goes first. A time runs
from ``sweep_create`` to the sweep being ``done`` in the database (every combination recorded
and the chord's callback ranked them).

The peer, measured in the same run: the same 100 combinations computed serially in this process
from one in-memory frame (no database, broker or worker), the floor for one core. Each worker
also reads the candles from the database once per sweep (``candle read``, measured here too).
It prints the best and median seconds per configuration, the CPU time the workers used during a
sweep and that over the wall time (``cores used``: below the worker count when other processes
hold the cores), how the combinations were spread over the workers, and the ratios. The machine
is shared and noisy: compare ratios, not seconds. A ``DATABASE_URL`` database must exist; it is
migrated, and the bench refuses to run if it already holds candles where it stores its own.

    .venv/bin/python bench/sweep.py [--candles 200000] [--rounds 3] [--pool solo]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/benchdb REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/sweep.py
"""

from __future__ import annotations

import argparse
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
    """Seconds from ``sweep_create`` to the sweep finished, and combinations per worker."""
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


def in_process_seconds(size: int, grid: dict[str, list[int]]) -> tuple[float, float]:
    """(candle read, the combinations computed serially here) in seconds: the peer."""
    from backtests.engine import BacktestSettings
    from backtests.runner import run_backtest
    from markets.selectors import candles_frame
    from strategies.registry import active

    started = time.perf_counter()
    candles = candles_frame(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        start_ms=int(START.timestamp() * 1000),
        end_ms=_end_ms(size),
    )
    read = time.perf_counter() - started
    settings = BacktestSettings(initial_cash=10_000.0, fee_rate=0.001)
    started = time.perf_counter()
    for fast in grid["fast"]:
        for slow in grid["slow"]:
            strategy = active().create("ma_cross", {"fast": fast, "slow": slow, "ma": "sma"})
            run_backtest(candles, strategy, settings)
    return read, time.perf_counter() - started


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
        for workers in worker_sets:
            timed_sweep(workers, user, WARM_UP_GRID, args.candles)
        timings: dict[str, list[SweepTiming]] = {workers.name: [] for workers in worker_sets}
        for round_ in range(args.rounds):
            order = worker_sets if round_ % 2 == 0 else worker_sets[::-1]
            for workers in order:
                timings[workers.name].append(timed_sweep(workers, user, GRID, args.candles))
        read, serial = in_process_seconds(args.candles, GRID)
        report(timings, read=read, serial=serial)
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


def report(timings: dict[str, list[SweepTiming]], *, read: float, serial: float) -> None:
    combinations = len(GRID["fast"]) * len(GRID["slow"])
    print(
        f"\n{'configuration':<20} {'best s':>7} {'median s':>9} {'combos/s':>9} "
        f"{'worker CPU s':>13} {'cores used':>11}  combinations per worker"
    )
    print(f"{'in-process, serial':<20} {serial:>7.2f} {serial:>9.2f} {combinations / serial:>9.1f}")
    print(f"{'candle read (once)':<20} {read:>7.2f}")
    best: dict[str, float] = {}
    median: dict[str, float] = {}
    for name, runs in timings.items():
        seconds = [run.seconds for run in runs]
        best[name], median[name] = min(seconds), statistics.median(seconds)
        cpu = statistics.median(run.cpu_seconds for run in runs)
        # Below the worker count when other processes take the cores (a busy machine).
        cores = statistics.median(run.cpu_seconds / run.seconds for run in runs)
        spread = ", ".join("/".join(map(str, run.per_worker)) for run in runs)
        print(
            f"{name:<20} {best[name]:>7.2f} {median[name]:>9.2f} "
            f"{combinations / median[name]:>9.1f} {cpu:>13.2f} {cores:>11.2f}  {spread}"
        )
    one, two = "1 worker", "2 workers"
    print(
        f"\nspeed-up 2 workers / 1 worker: best {best[one] / best[two]:.2f}x, "
        f"median {median[one] / median[two]:.2f}x"
    )
    print(
        f"1 worker / in-process serial: best {best[one] / serial:.2f}x, "
        f"median {median[one] / serial:.2f}x (queue, database, events and candle read)"
    )
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
