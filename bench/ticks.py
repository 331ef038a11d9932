"""Benchmark: bot ticks a second one worker sustains, for 10, 100 and 1000 paper bots.

It sets up its own stack, as bench/sweep.py does: a throwaway SQLite database (``DATABASE_URL``,
if set, is used instead; it must exist and is migrated), the embedded Redis (or ``REDIS_URL``),
and the shipped BTC/USDT 5m candles (``markets/data/btc_usdt_5m.csv.gz``, one bulk insert; left in
place when the database already holds them).

The fleet: N bots of one user, each on a paper account of its own (10,000 USDT), trading
ma_cross on the replay feed. Their (fast, slow) cycle through ``GRID`` so that they do not all
trade on the same candle; they start at the same market time, ``START_ROW`` of the sample, with
a full ``BOT_CANDLE_WINDOW`` of candles before it. A tick's work does not depend on the
timeframe (the same window of closed candles, strategy, decision, orders and books), so the
5m sample stands in for 1m candles: only the time budget per candle changes.

1. In process (one solo worker's throughput without the broker): ``bot_tick`` for every bot,
   one bot after the other, on ``--candles`` consecutive candles of a manual clock (the first
   is the replay's start, where every bot whose signal is on buys). Tick latency is the wall
   time of one ``bot_tick`` call; a candle's latency is the time all N ticks of that candle
   take, from its close to the last one done. Database queries per tick are counted with
   ``connection.execute_wrapper``. Log lines are formatted and written to /dev/null (their
   cost is counted, the table is not buried).
   The peer: the same loop once more without moving the clock, where every tick finds no new
   candle (``waiting``: lease claim, reconcile with the exchange, release); ``÷ waiting`` is a
   deciding tick's median over that one's, i.e. what the strategy, the decision, the orders
   and the books add to a tick's fixed cost.
2. Through a real ``celery worker`` (``--pool solo``, on a queue of its own): the bench plays
   beat, sending ``dispatch_ticks_task`` to the worker's queue every second; the worker runs
   the dispatcher, which enqueues the due bots in batches of ``BOT_TICK_BATCH``
   (``bot_ticks_task``), and ticks them. For each
   of ``--worker-candles`` candles the bots' replay is moved on one candle at once (a candle
   closes now for every bot) and the bench times from that moment until every bot has
   recorded the candle: the whole path, beat period, broker and dispatcher included. The
   tick latency inside the worker comes from its ``bot.tick`` log lines (``ms``).

It ends with the verdict for 1000 bots on 1m candles in one worker: enough ticks a second
(1000 / 60 s) and every candle's 1000 ticks done within ``BUDGET_SECONDS`` of its close. The
machine is shared and noisy: compare ratios, not seconds.

    .venv/bin/python bench/ticks.py [--sizes 10 100 1000] [--candles 2] [--worker-candles 1]
        [--no-worker]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/benchdb REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/ticks.py
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from _support import django_for_bench

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXCHANGE, SYMBOL, TIMEFRAME = "bitget", "BTC/USDT", "5m"
STEP_MS = 5 * 60_000
START_ROW = 2000  # the replay's first candle in the sample; 500+ rows of warm-up before it
GRID = [(5, 20), (8, 21), (10, 30), (12, 26), (15, 50), (20, 60)]  # ma_cross (fast, slow)
SPEED = 1.0  # candles a minute: the in-process clock moves 60 s per candle, as 1m candles do
BUDGET_SECONDS = 5.0  # a candle's ticks must be done this long after its close
CANDLE_SECONDS = 60.0  # 1m candles
BEAT_SECONDS = 1.0  # BOT_DISPATCH_SECONDS' default
STILL_SPEED = 60 / 86_400  # one candle a day: market time stands still in the worker run
POLL_SECONDS = 0.02


# --- the stack ---------------------------------------------------------------------------------


def store_sample() -> bool:
    """Store the shipped 5m candles unless the database has them; True when this bench did."""
    from markets.candle_csv import read_candle_file
    from markets.candles import SAMPLE_PATH
    from markets.models import Candle

    rows = read_candle_file(SAMPLE_PATH, timeframe=TIMEFRAME).rows
    stored = Candle.objects.filter(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME,
        open_time__gte=rows[0].open_time, open_time__lte=rows[-1].open_time,
    )  # fmt: skip
    if stored.exists():
        if stored.count() != len(rows):
            raise SystemExit("this database holds part of the sample's candles; load it whole")
        return False
    Candle.objects.bulk_create(
        (Candle(exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, **row._asdict())
         for row in rows),
        batch_size=5000,
    )  # fmt: skip
    return True


def remove_sample() -> None:
    from markets.candle_csv import read_candle_file
    from markets.candles import SAMPLE_PATH
    from markets.models import Candle

    rows = read_candle_file(SAMPLE_PATH, timeframe=TIMEFRAME).rows
    Candle.objects.filter(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME,
        open_time__gte=rows[0].open_time, open_time__lte=rows[-1].open_time,
    ).delete()  # fmt: skip


def sample_start_ms() -> int:
    from markets.candle_csv import read_candle_file
    from markets.candles import SAMPLE_PATH

    return int(read_candle_file(SAMPLE_PATH, timeframe=TIMEFRAME).rows[START_ROW].open_time)


@contextmanager
def logs_to_devnull() -> Iterator[None]:
    """Every log line still formatted and written, to /dev/null."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    with open(os.devnull, "w") as devnull:
        streams = [handler.setStream(devnull) for handler in handlers]
        try:
            yield
        finally:
            for handler, stream in zip(handlers, streams, strict=True):
                if stream is not None:
                    handler.setStream(stream)


# --- the fleet ---------------------------------------------------------------------------------


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Fleet:
    size: int
    user: Any
    bot_ids: list[int]
    clock: ManualClock
    setup_seconds: float


def create_fleet(size: int, start_ms: int) -> Fleet:
    """``size`` bots of a new user, each on a paper account of its own, started (manual clock)."""
    from accounts.models import User
    from bots import services
    from bots.models import Bot
    from bots.services import BotConfig
    from markets import services as market_services

    started = time.perf_counter()
    clock = ManualClock(1_000_000.0)
    user = User.objects.create_user(f"bench-ticks-{size}-{uuid.uuid4().hex[:8]}@example.com")
    bot_ids = []
    for index in range(size):
        account = market_services.exchange_account_open(
            user=user, exchange=EXCHANGE, label=f"paper {index}", mode="paper",
            paper_balance={"USDT": Decimal(10_000)},
        )  # fmt: skip
        fast, slow = GRID[index % len(GRID)]
        config = BotConfig(
            name=f"bot {index}", exchange_account=account, symbol=SYMBOL, timeframe=TIMEFRAME,
            strategy="ma_cross", params={"fast": fast, "slow": slow},
            data_source=Bot.DataSource.REPLAY,
            replay_start=datetime.fromtimestamp(start_ms / 1000, tz=UTC), replay_speed=SPEED,
        )  # fmt: skip
        bot = services.bot_create(user=user, config=config)
        services.bot_start(bot=bot, clock=clock)
        bot_ids.append(bot.pk)
    return Fleet(size, user, bot_ids, clock, time.perf_counter() - started)


# --- 1. in process -----------------------------------------------------------------------------


class QueryCounter:
    """A ``connection.execute_wrapper``: counts every statement sent to the database."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                 context: Any) -> Any:  # fmt: skip
        self.count += 1
        return execute(sql, params, many, context)


@dataclass
class Round:
    """One pass over the fleet: every bot ticked once."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    queries: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


def tick_round(fleet: Fleet, counter: QueryCounter) -> Round:
    from bots import services

    latencies: list[float] = []
    queries: list[float] = []
    outcomes = Counter[str]()
    started = time.perf_counter()
    for bot_id in fleet.bot_ids:
        before, tick_started = counter.count, time.perf_counter()
        result = services.bot_tick(bot_id=bot_id, clock=fleet.clock)
        latencies.append(time.perf_counter() - tick_started)
        queries.append(counter.count - before)
        outcomes[result.outcome] += 1
    return Round(time.perf_counter() - started, latencies, queries, outcomes)


def batch_round(fleet: Fleet, counter: QueryCounter) -> Round:
    """The fleet ticked as a worker ticks it: ``bots_tick_batch`` on ``BOT_TICK_BATCH`` bots
    at a time (a latency is a batch's time shared among its bots)."""
    from django.conf import settings

    from bots import services

    latencies, queries, outcomes = [], [], Counter[str]()
    size = settings.BOT_TICK_BATCH
    started = time.perf_counter()
    for first in range(0, len(fleet.bot_ids), size):
        ids = fleet.bot_ids[first : first + size]
        before, batch_started = counter.count, time.perf_counter()
        outcomes.update(services.bots_tick_batch(bot_ids=ids, clock=fleet.clock))
        share = (time.perf_counter() - batch_started) / len(ids)
        latencies.extend([share] * len(ids))
        queries.extend([(counter.count - before) / len(ids)] * len(ids))
    return Round(time.perf_counter() - started, latencies, queries, outcomes)


@dataclass
class InProcess:
    candles: list[Round]  # one per candle
    waiting: Round  # the peer: the same loop with no new candle
    batched: Round  # one more candle, ticked in batches as a worker does


def in_process(fleet: Fleet, candles: int) -> InProcess:
    from django.db import connection

    counter = QueryCounter()
    rounds = []
    with connection.execute_wrapper(counter), logs_to_devnull():
        for index in range(candles):
            if index:
                fleet.clock.now += 60.0 / SPEED  # the next candle closes
            rounds.append(tick_round(fleet, counter))
        waiting = tick_round(fleet, counter)
        fleet.clock.now += 60.0 / SPEED
        batched = batch_round(fleet, counter)
    unexpected = set(waiting.outcomes) - {"waiting"}
    if unexpected:
        raise SystemExit(f"the peer round did more than wait: {dict(waiting.outcomes)}")
    return InProcess(rounds, waiting, batched)


# --- 2. through a real worker --------------------------------------------------------------------


@dataclass
class Worker:
    queue: str
    hostname: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tick_ms(self, bot_ids: set[int], since_line: int) -> list[float]:
        """``ms`` of the worker's ``bot.tick`` lines of ``bot_ids`` after line ``since_line``."""
        found = []
        for line in self.log_path.read_text().splitlines()[since_line:]:
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("message") == "bot.tick" and record.get("bot_id") in bot_ids:
                    found.append(float(record["ms"]))
        return found

    def log_lines(self) -> int:
        return len(self.log_path.read_text().splitlines())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def start_worker(env: dict[str, str], log_dir: Path) -> Worker:
    from tradingbot.celery import app

    queue = env["BOTS_QUEUE"]
    hostname = f"{queue}@bench"
    log_path = log_dir / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tradingbot", "worker", "--pool", "solo",
         "--queues", queue, "--hostname", hostname, "--without-mingle", "--without-gossip",
         "--loglevel", "INFO"],
        cwd=ROOT, env={**env, "LOG_FORMAT": "json"}, stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[hostname], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the worker did not start:\n{log_path.read_text()}")
    return Worker(queue, hostname, process, log_path)


@dataclass
class WorkerCandle:
    seconds: float  # from the candle's close to the last bot's tick recorded
    cpu_seconds: float  # the worker's
    tick_ms: list[float]  # inside the worker, from its log


def next_candle_now(fleet: Fleet) -> int:
    """Close one more candle for every bot of the fleet, now, on the wall clock: the replay
    resumes one candle further on at this moment, barely moving after (what ``bot_start`` sets,
    written directly: the bots keep running). The candle the bots must now decide on."""
    from django.db.models import F
    from django.utils import timezone

    from bots.models import Bot

    bots = Bot.objects.filter(pk__in=fleet.bot_ids)
    last = set(bots.values_list("last_candle_ms", flat=True))
    candle = next(iter(last)) if len(last) == 1 else None
    if candle is None:
        raise SystemExit(f"the fleet's bots are not on one candle: {sorted(map(str, last))}")
    bots.update(
        replay_resume_ms=F("last_candle_ms") + 2 * STEP_MS, replay_started_at=time.time(),
        replay_speed=STILL_SPEED, next_tick_at=timezone.now(),
    )  # fmt: skip
    return candle + STEP_MS


def through_worker(fleet: Fleet, worker: Worker, candles: int) -> list[WorkerCandle]:
    from bots.models import Bot
    from bots.tasks import dispatch_ticks_task

    results = []
    for _ in range(candles):
        since_line, cpu_before = worker.log_lines(), worker.cpu_seconds()
        candle_ms = next_candle_now(fleet)
        closed = time.perf_counter()
        next_beat = closed
        done = Bot.objects.filter(pk__in=fleet.bot_ids, last_candle_ms__gte=candle_ms)
        while done.count() < fleet.size:
            now = time.perf_counter()
            if now >= next_beat:  # beat: the dispatcher runs on the trading queue
                dispatch_ticks_task.apply_async(queue=worker.queue, expires=10)
                next_beat += BEAT_SECONDS
            if now - closed > 600:
                raise SystemExit(f"the worker did not finish a candle in 10 minutes: {worker}")
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - closed
        time.sleep(0.3)  # the last tick's log line
        ticks = worker.tick_ms(set(fleet.bot_ids), since_line)
        results.append(WorkerCandle(seconds, worker.cpu_seconds() - cpu_before, ticks))
    return results


# --- the report ----------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def in_process_table(results: dict[int, InProcess]) -> None:
    print(
        f"\n1. in process, one bot after the other (= one solo worker without the broker)\n"
        f"{'bots':>5} {'ticks':>6} {'ticks/s':>8} {'median ms':>10} {'p95 ms':>7} "
        f"{'candle s':>9} {'queries':>8} {'traded':>7} {'held':>5} │ {'waiting':>8} "
        f"{'median ms':>10} {'queries':>8} │ {'÷ waiting':>9}"
    )
    print(f"{'':>31}{'(worst)':>18} {'/tick':>8} {'':>14}│ {'ticks/s':>8} {'':>19}│")
    for size, result in results.items():
        latencies = [x for r in result.candles for x in r.latencies]
        queries = [x for r in result.candles for x in r.queries]
        outcomes = sum((r.outcomes for r in result.candles), Counter[str]())
        seconds = sum(r.seconds for r in result.candles)
        waiting = result.waiting
        median, waiting_median = statistics.median(latencies), statistics.median(waiting.latencies)
        other = sum(outcomes.values()) - outcomes["traded"] - outcomes["held"]
        print(
            f"{size:>5} {len(latencies):>6} {len(latencies) / seconds:>8.1f} "
            f"{median * 1000:>10.1f} {percentile(latencies, 0.95) * 1000:>7.1f} "
            f"{max(r.seconds for r in result.candles):>9.2f} {statistics.mean(queries):>8.1f} "
            f"{outcomes['traded']:>7} {outcomes['held']:>5} │ "
            f"{size / waiting.seconds:>8.1f} {waiting_median * 1000:>10.1f} "
            f"{statistics.mean(waiting.queries):>8.1f} │ {median / waiting_median:>8.1f}x"
            + (f"  ({other} other: {dict(outcomes)})" if other else "")
        )


def batched_table(results: dict[int, InProcess]) -> None:
    print(
        "\n1b. in process, in batches (bots_tick_batch, as the worker's tick task runs them; "
        "one more candle)\n"
        f"{'bots':>5} {'ticks/s':>8} {'candle s':>9} {'queries/tick':>13} outcomes"
    )
    for size, result in results.items():
        batched = result.batched
        print(
            f"{size:>5} {size / batched.seconds:>8.1f} {batched.seconds:>9.2f} "
            f"{statistics.mean(batched.queries):>13.1f} {dict(batched.outcomes)}"
        )


def worker_table(results: dict[int, list[WorkerCandle]]) -> None:
    print(
        "\n2. through a real worker (solo pool): beat every second -> dispatcher task -> one "
        "tick task per BOT_TICK_BATCH bots\n"
        f"{'bots':>5} {'candles':>8} {'close->done s':>14} {'ticks/s':>8} {'tick median ms':>15} "
        f"{'tick p95 ms':>12} {'worker CPU s':>13}"
    )
    for size, candles in results.items():
        seconds = [c.seconds for c in candles]
        ticks = [x for c in candles for x in c.tick_ms]
        per_candle = " / ".join(f"{s:.2f}" for s in seconds)
        print(
            f"{size:>5} {len(candles):>8} {per_candle:>14} "
            f"{size * len(candles) / sum(seconds):>8.1f} "
            f"{statistics.median(ticks) if ticks else float('nan'):>15.1f} "
            f"{percentile(ticks, 0.95) if ticks else float('nan'):>12.1f} "
            f"{sum(c.cpu_seconds for c in candles):>13.2f}"
        )


def verdict(in_proc: dict[int, InProcess], workers: dict[int, list[WorkerCandle]]) -> None:
    """1000 bots on 1m candles in one worker?"""
    need = 1000 / CANDLE_SECONDS
    print(
        f"\n1000 bots on 1m candles in one worker need >= {need:.1f} ticks/s and every candle's "
        f"1000 ticks done within {BUDGET_SECONDS:g} s of its close "
        f"(>= {1000 / BUDGET_SECONDS:.0f} ticks/s)."
    )
    for label, rates in (
        ("in process, one bot at a time (bot_tick)",
         {size: _in_process_rate(result) for size, result in in_proc.items()}),
        ("in process, batched (bots_tick_batch)",
         {size: (size / r.batched.seconds, r.batched.seconds) for size, r in in_proc.items()}),
        ("real worker (batched)",
         {size: _worker_rate(size, result) for size, result in workers.items()}),
    ):  # fmt: skip
        if not rates:
            continue
        size = max(rates)
        rate, candle_seconds = rates[size]
        projected = 1000 / rate
        fits = rate >= need and projected <= BUDGET_SECONDS
        print(
            f"  {label}, {size} bots: {rate:.1f} ticks/s, so 1000 ticks take {projected:.1f} s "
            f"(worst candle measured: {candle_seconds:.2f} s for {size} bots): "
            f"{'FITS' if fits else 'does NOT fit'}.\n"
            f"    {rate / need:.2f}x the throughput needed, {BUDGET_SECONDS / projected:.2f}x the "
            f"latency budget; one worker keeps {int(rate * BUDGET_SECONDS)} bots within "
            f"{BUDGET_SECONDS:g} s; 1000 bots need {math.ceil(projected / BUDGET_SECONDS)} such "
            f"workers (a core each)"
        )


def trading_note(in_proc: dict[int, InProcess]) -> None:
    """The batched figures are of candles on which bots hold; a bot that trades takes the full
    tick. Say what a candle on which many bots trade costs."""
    size = max(in_proc)
    first = in_proc[size].candles[0]
    traded = first.outcomes["traded"]
    print(
        f"  a candle on which {traded} of {size} bots trade (the replay's start, where every bot "
        f"whose signal is on buys) took {first.seconds:.1f} s one bot at a time: trades take the "
        f"full tick, holds the batched path"
    )


def _in_process_rate(result: InProcess) -> tuple[float, float]:
    ticks = sum(len(r.latencies) for r in result.candles)
    return ticks / sum(r.seconds for r in result.candles), max(r.seconds for r in result.candles)


def _worker_rate(size: int, candles: list[WorkerCandle]) -> tuple[float, float]:
    seconds = [c.seconds for c in candles]
    return size * len(candles) / sum(seconds), max(seconds)


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 100, 1000])
    parser.add_argument("--candles", type=int, default=2, help="in-process candles per size")
    parser.add_argument("--worker-candles", type=int, default=1, help="per size, real worker")
    parser.add_argument("--no-worker", action="store_true", help="in process only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ticks-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, work_dir: Path) -> None:
    env, embedded = django_for_bench(work_dir, BOTS_QUEUE=f"bench-ticks-{uuid.uuid4().hex[:8]}")
    from django.conf import settings
    from django.core.management import call_command

    from bots.models import Bot
    from strategies.services import strategy_catalogue_sync

    worker: Worker | None = None
    fleets: list[Fleet] = []
    stored = False
    try:
        with logs_to_devnull():
            call_command("migrate", verbosity=0, interactive=False)
            strategy_catalogue_sync()
            stored = store_sample()
        if not args.no_worker:
            worker = start_worker(env, work_dir)
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        print(
            f"database {db}, redis {'embedded' if embedded else settings.REDIS_URL}, "
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
            f"candle window {settings.BOT_CANDLE_WINDOW}, ma_cross on {len(GRID)} settings, "
            f"one paper account per bot"
        )
        start_ms = sample_start_ms()
        in_proc: dict[int, InProcess] = {}
        workers: dict[int, list[WorkerCandle]] = {}
        for size in args.sizes:
            with logs_to_devnull():
                fleet = create_fleet(size, start_ms)
            fleets.append(fleet)
            print(f"{size} bots created and started in {fleet.setup_seconds:.1f} s", flush=True)
            in_proc[size] = in_process(fleet, args.candles)
            if worker is not None:
                workers[size] = through_worker(fleet, worker, args.worker_candles)
        in_process_table(in_proc)
        batched_table(in_proc)
        if workers:
            worker_table(workers)
        verdict(in_proc, workers)
        trading_note(in_proc)
        print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if worker is not None:
            worker.stop()
        with logs_to_devnull():
            for fleet in fleets:
                Bot.objects.filter(user=fleet.user).delete()  # and their books
                fleet.user.delete()  # and its paper accounts
            if stored:
                remove_sample()
        if embedded is not None:
            embedded.terminate()
            embedded.wait(timeout=10)


if __name__ == "__main__":
    main()
