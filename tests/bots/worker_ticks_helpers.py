"""Real ``celery worker`` processes ticking bots, and what the tests need around them.

- ``bot_workers``: start workers on a queue of their own (``tests/backtests/worker_helpers``),
  with ``BOTS_QUEUE`` set to it in their environment (ticks they enqueue stay with them), JSON
  log lines (parsed by :func:`log_records`) and, optionally, a short tick lease.
- :func:`replay_start`: where in the shipped candles a replay must start for the bot's first
  tick to decide a buy (and what the signal does after it); :func:`store_replay` stores the
  candles the tick warms up on before it, and the replayed ones after it.
- :func:`dispatch_until`: the beat's dispatcher (``bots_dispatch``) run in the test process
  every 0.1 s until a condition holds.
- :class:`PositionRowLock`: another session holding ``SELECT ... FOR UPDATE`` on a bot's
  position row (PostgreSQL), to stop a tick between sending an order and booking it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.conf import settings

from bots.models import Bot, Position
from strategies.registry import active
from tests.backtests.worker_helpers import Worker, new_queue, start_workers, wait_until
from tests.bots.bot_helpers import STEP_MS, sample_rows, store_candles
from tests.conftest import database_url

PARAMS = {"fast": 5, "slow": 20}  # ma_cross, sma: what replay_bot gives a bot by default
DISPATCH_INTERVAL = 0.1


# --- where the replay starts -------------------------------------------------------------------


@functools.cache
def sample_targets() -> np.ndarray:
    """ma_cross(5, 20)'s target after each candle of the shipped sample (as the tick computes
    it: ``Strategy.positions``; a simple moving average only sees its last 20 closes, so the
    target over the whole file is the target over any window the tick reads)."""
    frame = pd.DataFrame([row._asdict() for row in sample_rows()])
    return active().create("ma_cross", PARAMS).positions(frame).to_numpy()


def replay_start(*, then: int, candles: int) -> int:
    """Index of the first sample row a replay can start at so that its first tick decides a
    buy (the candle before it, the newest closed one at the start, has target +1) and the
    target is ``then`` for the ``candles`` candles from the start on. A full candle window of
    warm-up rows comes before it."""
    targets = sample_targets()
    for index in range(settings.BOT_CANDLE_WINDOW, len(targets) - candles):
        if targets[index - 1] == 1 and (targets[index : index + candles] == then).all():
            return index
    raise AssertionError(f"no stretch of the sample with target +1 then {then} x {candles}")


@dataclass(frozen=True)
class Replay:
    start_ms: int  # open time of the first replayed candle (the replay's start)

    @property
    def first_decision_ms(self) -> int:
        """The candle the first tick decides on: the newest one closed at the start."""
        return self.start_ms - STEP_MS


def store_replay(start: int, *, after: int) -> Replay:
    """Store a candle window of rows before sample row ``start`` and ``after`` rows from it."""
    warm_up = settings.BOT_CANDLE_WINDOW
    rows = store_candles(start - warm_up, warm_up + after)
    return Replay(start_ms=rows[warm_up].open_time)


# --- workers -----------------------------------------------------------------------------------


StartBotWorkers = Callable[..., list[Worker]]


@pytest.fixture
def bot_workers(transactional_db: Any, tmp_path: Path) -> Iterator[StartBotWorkers]:
    """``start(count=1, *, queue=None, env=None)``: real solo-pool workers on the test
    database consuming ``queue`` (a new one by default), stopped at teardown; the queue is
    purged then."""
    from django.db import connection

    from tradingbot.celery import app

    started: list[Worker] = []

    def start(
        count: int = 1, *, queue: str | None = None, env: Mapping[str, str] | None = None
    ) -> list[Worker]:
        queue = queue or new_queue()
        worker_env = {
            "DATABASE_URL": database_url(connection.settings_dict),
            "BOTS_QUEUE": queue,
            "LOG_FORMAT": "json",
            **(env or {}),
        }
        # A directory per start: a later worker on the same queue gets the same log file name.
        log_dir = tmp_path / f"start-{len(started)}"
        log_dir.mkdir()
        workers = start_workers(count, queue=queue, log_dir=log_dir, env=worker_env)
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        worker.stop()
    with app.connection_for_write() as broker:
        for queue in {worker.queue for worker in started}:
            broker.default_channel.queue_purge(queue)


def log_records(worker: Worker, message: str, **fields: Any) -> list[dict[str, Any]]:
    """The worker's JSON log records of ``message`` whose fields match ``fields``, in order."""
    found = []
    for line in worker.log().splitlines():
        if not line.startswith("{"):
            continue  # Celery's start-up banner
        record = json.loads(line)
        if record.get("message") == message and all(
            record.get(key) == value for key, value in fields.items()
        ):
            found.append(record)
    return found


# --- the dispatcher ----------------------------------------------------------------------------


def dispatch_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Run the dispatcher as beat does (enqueue a tick for every due bot through ``send_ticks``,
    i.e. to ``settings.BOTS_QUEUE``) until ``condition`` holds."""
    from bots import services
    from bots.services.dispatch import send_ticks

    def dispatched() -> Any:
        services.bots_dispatch(send=send_ticks)
        return condition()

    return wait_until(dispatched, timeout=timeout, what=what, interval=DISPATCH_INTERVAL)


def queued_messages(queue: str) -> int:
    """Messages waiting in ``queue`` on the broker (not those a worker holds unacknowledged)."""
    from amqp.exceptions import ChannelError

    from tradingbot.celery import app

    with app.connection_for_write() as broker:
        try:
            declared = broker.default_channel.queue_declare(queue=queue, passive=True)
        except ChannelError:  # Redis: an empty queue is no key at all
            return 0
        return int(declared.message_count)


def decided_candles(bot: Bot) -> list[int]:
    """The candles the bot decided on, in the order it did (its ``tick`` events)."""
    events = bot.events.filter(kind="tick").order_by("id")
    return [int(event.data["candle_ms"]) for event in events]


# --- a lock on the bot's position (PostgreSQL) ------------------------------------------------


class PositionRowLock:
    """``SELECT ... FOR UPDATE`` on the bot's position row, held by a session of its own until
    ``release``. Booking an order result starts by locking that row, so a tick that has just
    sent an order waits here, before anything of the result is recorded."""

    def __init__(self, bot: Bot) -> None:
        import psycopg
        from django.db import connection

        self._connection = psycopg.connect(database_url(connection.settings_dict))
        position = Position.objects.get(bot=bot, symbol=bot.symbol)
        with self._connection.cursor() as cursor:  # opens the transaction (not autocommit)
            cursor.execute("SELECT id FROM positions WHERE id = %s FOR UPDATE", [position.pk])
            assert cursor.fetchone() == (position.pk,)

    def release(self) -> None:
        if not self._connection.closed:
            self._connection.rollback()
            self._connection.close()


def sessions_waiting_for_a_lock() -> int:
    """Sessions of the test database blocked on a lock now (PostgreSQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        (count,) = cursor.fetchone()
    return int(count)


def wait_for_lease_to_lapse(bot: Bot, *, timeout: float) -> None:
    def lapsed() -> bool:
        bot.refresh_from_db(fields=["tick_lease_until"])
        until = bot.tick_lease_until
        return until is None or until.timestamp() < time.time()

    wait_until(lapsed, timeout=timeout, what=f"bot {bot.pk}'s tick lease to lapse", interval=0.2)
