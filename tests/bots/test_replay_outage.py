"""A replay bot whose whole stack dies mid-replay still makes its backtest's trades.

Real processes, as ``make run`` has them: a ``celery worker`` ticking the bots and a ``celery
beat`` running the dispatcher every second, on a queue of their own (``BOTS_QUEUE``). The bot
replays the shipped candles fast enough to trade; mid-replay the worker and beat are SIGKILLed
(no clean-up of any kind), nothing runs for 30 s while the replay's schedule runs on, then both
start again. The bot resumes after the last candle it acted on and catches up candle by candle
(``BOT_REPLAY_CATCH_UP_CANDLES`` a tick), to the end of its data, where it stops. Its trades
(side, quantity, price, candle) are then the backtest's over the same candles, trade for trade.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bots import services
from bots.models import Bot, Trade
from strategies.services import strategy_catalogue_sync
from tests.backtests.worker_helpers import Worker, wait_until
from tests.bots.bot_helpers import paper_account, replay_bot, store_candles
from tests.bots.parity_helpers import assert_same_trades, backtest_trades
from tests.bots.worker_ticks_helpers import (
    StartBotWorkers,
    bot_workers,
    decided_candles,
    log_records,
)
from tests.conftest import ROOT, server_env

__all__ = ["bot_workers"]  # a fixture, imported for pytest to find

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

FIRST, COUNT = 2000, 300  # the stored stretch of the sample: ma_cross(5, 20) trades 8 times
PARAMS = {"fast": 5, "slow": 20}
SPEED = 600.0  # candles a minute: the schedule runs through the 300 candles in 30 s
KILL_AFTER = 100  # candles acted on before the stack is killed
OUTAGE_SECONDS = 30.0
CATCH_UP = 50  # BOT_REPLAY_CATCH_UP_CANDLES
# A tick lease short enough that a tick killed mid-way frees the bot during the outage.
STACK_ENV = {"BOT_TICK_LEASE_SECONDS": "10", "BOT_REPLAY_CATCH_UP_CANDLES": str(CATCH_UP)}

StartBeat = Callable[[str], subprocess.Popen[str]]


@pytest.fixture
def beat(bot_workers: StartBotWorkers, tmp_path: Path) -> Iterator[StartBeat]:
    """``start(queue)``: a real ``celery beat`` on the test database whose dispatcher sends the
    ticks to ``queue``; killed at teardown (before the workers stop and the database is
    flushed)."""
    started: list[subprocess.Popen[str]] = []

    def start(queue: str) -> subprocess.Popen[str]:
        index = len(started)
        log = (tmp_path / f"beat-{index}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tradingbot", "beat", "--loglevel", "INFO",
             "--pidfile", str(tmp_path / f"beat-{index}.pid"),
             "--schedule", str(tmp_path / "beat-schedule")],
            cwd=ROOT, env=server_env(BOTS_QUEUE=queue, **STACK_ENV), stdout=log,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        log.close()  # the child has its own handle
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)


def start_stack(
    bot_workers: StartBotWorkers, beat: StartBeat, queue: str | None = None
) -> tuple[Worker, subprocess.Popen[str]]:
    [worker] = bot_workers(queue=queue, env=STACK_ENV)
    return worker, beat(worker.queue)


def kill_stack(worker: Worker, beat_process: subprocess.Popen[str]) -> None:
    """SIGKILL both, at once: no warm shutdown, no tick finished, nothing acknowledged."""
    beat_process.kill()
    worker.kill()
    beat_process.wait(timeout=20)


def acted_on(bot: Bot) -> int | None:
    bot.refresh_from_db(fields=["last_candle_ms", "status"])
    return bot.last_candle_ms


def test_a_replay_bot_stopped_by_a_killed_stack_for_30_s_makes_its_backtests_trades(
    bot_workers: StartBotWorkers, beat: StartBeat, user: Any, settings: Any
) -> None:
    # given: a worker and beat on a queue of their own, and a replay bot over 300 candles at
    # ten candles a second
    strategy_catalogue_sync()
    rows = store_candles(FIRST, COUNT)
    worker, beat_process = start_stack(bot_workers, beat)
    settings.BOTS_QUEUE = worker.queue
    runner = replay_bot(
        user, paper_account(user), start_ms=rows[0].open_time, params=PARAMS, speed=SPEED
    )
    bot = services.bot_start(bot=runner.bot)  # on the wall clock, as the worker's
    # and the stack trading it until it has acted on KILL_AFTER candles
    kill_at = rows[KILL_AFTER].open_time
    wait_until(
        lambda: (acted_on(bot) or 0) >= kill_at, timeout=60, what=f"{KILL_AFTER} candles acted on"
    )

    # when: the worker and beat are killed, and nothing runs for 30 s
    kill_stack(worker, beat_process)
    killed_at = acted_on(bot)
    assert killed_at is not None
    trades_before = Trade.objects.filter(bot=bot).count()
    time.sleep(OUTAGE_SECONDS)
    # then: the replay's schedule ran past the end of its data meanwhile, and the bot did not move
    assert acted_on(bot) == killed_at
    assert bot.status == Bot.Status.RUNNING

    # when: they start again, and the bot runs until its replay has ended
    new_worker, _ = start_stack(bot_workers, beat, queue=worker.queue)
    wait_until(
        lambda: acted_on(bot) is not None and bot.status == Bot.Status.STOPPED,
        timeout=90,
        what="the replay to end",
    )

    # then: the bot acted on every stored candle once, in order: none skipped by the outage
    assert decided_candles(bot) == [row.open_time for row in rows]
    assert bot.events.filter(kind="replay_ended").exists()
    # and it caught up after the outage several candles a tick, never more than CATCH_UP
    ticks = [r for r in log_records(new_worker, "bot.tick", bot_id=bot.pk) if r.get("candles")]
    assert ticks, new_worker.log()
    assert ticks[0]["candle_ms"] > killed_at
    assert max(r["candles"] for r in ticks) == CATCH_UP
    # and it traded before the outage and after it
    assert 0 < trades_before < Trade.objects.filter(bot=bot).count()
    # and its trades are the backtest's over the same candles, trade for trade
    expected = backtest_trades(rows[0].open_time, rows[-1].open_time, PARAMS)
    assert_same_trades(bot, expected)
