"""Real ``celery worker`` processes for the backtest tests, several per test, killable one by one.

Modelled on ``celery_worker_process`` in ``tests/conftest.py`` (a session-wide single worker),
but per test: a test may SIGKILL a worker, needs two workers sharing one queue, or a worker with
its own environment (``STRATEGY_MODULES``, ``BACKTEST_STALE_SECONDS``). Every worker of a test is
stopped before the test's database is flushed (the fixture depends on ``transactional_db``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import pytest

from tests.conftest import ROOT, database_url

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
T = TypeVar("T")


@dataclass
class Worker:
    """One worker process: ``hostname`` is what the tasks record as ``request.hostname``."""

    hostname: str
    queue: str
    process: subprocess.Popen[str]
    log_path: Path
    _log: TextIO = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL the whole worker (solo pool: the process running the task); no clean-up runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)

    def pool_children(self) -> list[int]:
        """Pids of the pool processes (prefork pool), from /proc."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """The log once it contains ``text`` (a line Celery writes after a task returned)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            assert time.monotonic() < deadline, f"{text!r} not in the worker's log:\n{log}"
            time.sleep(0.05)
        return log

    def stop(self) -> None:
        """Warm shutdown; killed if it does not exit in time (a task still sleeping)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()


def new_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def start_workers(
    count: int,
    *,
    queue: str,
    log_dir: Path,
    env: Mapping[str, str],
    pool: str = "solo",
) -> list[Worker]:
    """Start ``count`` workers consuming ``queue`` and wait until every one answers a ping.

    ``pool="solo"`` runs tasks in the worker process itself (killing it loses the task);
    ``"prefork"`` runs them in one child process each (``--concurrency 1``).
    """
    from tradingbot.celery import app

    pool_args = ["--pool", "solo"] if pool == "solo" else ["--pool", pool, "--concurrency", "1"]
    workers = []
    for index in range(count):
        hostname = f"{queue}-{index}@pytest"
        log_path = log_dir / f"{queue}-{index}.log"
        log = log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tradingbot", "worker", *pool_args,
             "--queues", queue, "--hostname", hostname, "--without-mingle", "--without-gossip",
             "--loglevel", "INFO"],
            cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        workers.append(Worker(hostname, queue, process, log_path, log))
    waiting = {worker.hostname: worker for worker in workers}
    deadline = time.monotonic() + START_TIMEOUT
    while waiting:
        for reply in app.control.ping(destination=list(waiting), timeout=0.5):
            for hostname in reply:
                waiting.pop(hostname, None)
        for worker in waiting.values():
            if worker.process.poll() is not None or time.monotonic() > deadline:
                for started in workers:
                    started.process.kill()
                raise RuntimeError(f"celery worker did not start:\n{worker.log()}")
    return workers


StartWorkers = Callable[..., list[Worker]]


@pytest.fixture
def worker_processes(transactional_db: Any, tmp_path: Path) -> Iterator[StartWorkers]:
    """``start(count=1, *, queue=None, env=None, strategy_modules=(), pool="solo")``: real
    workers on the test database consuming ``queue`` (a new one by default), stopped at teardown.

    Their environment carries ``DATABASE_URL`` (the test database), ``BACKTESTS_QUEUE`` (their
    queue, so tasks they enqueue themselves stay with them) and ``STRATEGY_MODULES``.
    """
    from django.db import connection

    started: list[Worker] = []

    def start(
        count: int = 1,
        *,
        queue: str | None = None,
        env: Mapping[str, str] | None = None,
        strategy_modules: Sequence[str] = (),
        pool: str = "solo",
    ) -> list[Worker]:
        queue = queue or new_queue()
        worker_env = {
            "DATABASE_URL": database_url(connection.settings_dict),
            "BACKTESTS_QUEUE": queue,
            "STRATEGY_MODULES": ",".join(strategy_modules),
            **(env or {}),
        }
        workers = start_workers(count, queue=queue, log_dir=tmp_path, env=worker_env, pool=pool)
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        worker.stop()


def wait_until(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)
    return result


class GroupListener:
    """A channel of this process on the channel layer, listening to groups as a WebSocket
    consumer does, from ONE event loop of its own (in a thread).

    One loop because channels_redis keeps a channel's receive buffer bound to the loop that first
    waited on it: receiving from a new loop per call (``async_to_sync``) breaks after a timeout.
    """

    def __init__(self) -> None:
        from channels.layers import get_channel_layer

        self.layer = get_channel_layer()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.channel: str = self._run(self.layer.new_channel())
        self.groups: list[str] = []
        self._pending: asyncio.Future[Any] | None = None

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def join(self, group: str) -> None:
        self._run(self.layer.group_add(group, self.channel))
        self.groups.append(group)

    def receive(self, *, seconds: float, until: Callable[[Any], bool] | None = None) -> list[Any]:
        """The messages that arrive within ``seconds``, or up to the first one ``until`` accepts."""
        return self._run(self._receive(seconds, until), timeout=seconds + 30)

    async def _receive(self, seconds: float, until: Callable[[Any], bool] | None) -> list[Any]:
        # The pending receive is kept, never cancelled: cancelling the pub/sub layer's receive
        # unsubscribes the channel.
        messages: list[Any] = []
        deadline = self._loop.time() + seconds
        while (left := deadline - self._loop.time()) > 0:
            if self._pending is None:
                self._pending = asyncio.ensure_future(self.layer.receive(self.channel))
            done, _ = await asyncio.wait({self._pending}, timeout=left)
            if not done:
                break
            messages.append(self._pending.result())
            self._pending = None
            if until is not None and until(messages[-1]):
                break
        return messages

    def close(self) -> None:
        for group in self.groups:
            self._run(self.layer.group_discard(group, self.channel))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture
def group_listener() -> Iterator[GroupListener]:
    listener = GroupListener()
    yield listener
    listener.close()
