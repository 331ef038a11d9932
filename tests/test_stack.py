"""The "two commands" topology for real: ``make run`` brings up web, worker, beat (and the embedded
Redis) and one Ctrl-C takes all of it down again.

These tests start the actual processes, so they take tens of seconds; they need no ``db`` fixture:
the stack under test migrates and seeds its own database.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.conftest import ROOT
from tests.stack_helpers import (
    CELERY_LOG_LINE,
    PROJECT_LOG_LINE,
    Stack,
    http,
    make_run,
    redis_command,
    unix_socket_answers,
)

# Installing (only when pyproject.toml changed), migrating, seeding, before the supervisor starts.
SETUP_TIMEOUT = 240
# From the supervisor starting the processes to /healthz answering 200.
HEALTHY_TIMEOUT = 90
SHUTDOWN_TIMEOUT = 30
# The demo bot replays 30 candles a minute and enters on its first buy signal.
DEMO_FIRST_ORDER_TIMEOUT = 120
HEALTHY = {"status": "ok", "database": "ok", "redis": "ok"}
DEMO_EMAIL = "demo@example.com"
WORKER_NODE = f"celery@{socket.gethostname()}"
# Under make run a process that dies is running again within this (docs/operations.md).
RESTARTED_WITHIN = 10
BACKTEST = {
    "strategy": "ma_cross", "params": {"fast": 10, "slow": 30, "ma": "sma"},
    "exchange": "bitget", "symbol": "BTC/USDT", "timeframe": "5m",
    "start": "2023-01-05T00:00:00Z", "end": "2023-01-12T00:00:00Z",
    "initial_cash": "10000", "fee_rate": "0.001", "slippage_bps": 0, "position_size": 1,
}  # fmt: skip
RUN_BACKTEST_TASK = "backtests.tasks.run_backtest_task"

pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(SETUP_TIMEOUT + HEALTHY_TIMEOUT + DEMO_FIRST_ORDER_TIMEOUT + 150),
]


@pytest.fixture
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack's own var dir, fresh, on a short path (its unix sockets are made in it)."""
    return tmp_path_factory.mktemp("stack")


def _start_and_wait_healthy(stack: Stack, processes: str) -> dict[str, float]:
    started = time.monotonic()
    stack.wait_for_output(rf"^Starting {processes} \(Ctrl-C stops them all\)$", SETUP_TIMEOUT)
    set_up = time.monotonic()
    health = stack.wait_healthy(HEALTHY_TIMEOUT)
    assert health.body == HEALTHY, f"/healthz body: {health.body}" + stack.tail()
    return {"setup_s": set_up - started, "healthz_after_start_s": time.monotonic() - set_up}


def _report(record_property: Callable[[str, object], None], timings: dict[str, float]) -> None:
    line = ", ".join(f"{name}={value:.1f}" for name, value in timings.items())
    print(f"\nstack timings: {line}")
    for name, value in timings.items():
        record_property(name, round(value, 2))


def _assert_ctrl_c_stops_everything(stack: Stack) -> float:
    shutdown = stack.interrupt(timeout=SHUTDOWN_TIMEOUT)
    left = stack.leftovers()
    assert left == {}, f"processes left behind after Ctrl-C: {left}" + stack.tail()
    return shutdown


def _assert_the_demo_bot_trades(stack: Stack, token: str) -> None:
    bots = http("GET", f"{stack.url}/api/bots", token=token)
    assert bots.status == 200, f"/api/bots: {bots.body}" + stack.tail()
    [demo] = [b for b in bots.body["results"] if b["data_source"]["kind"] == "replay"]
    assert demo["status"] == "running", demo
    bot_id = demo["id"]
    stack.wait_for_output(
        rf"^\S+ worker\.1\s*\| \S+Z INFO bots\.tick: bot\.tick action=\w+ bot_id={bot_id} ", 60
    )
    stack.wait_for_output(
        rf"^\S+ worker\.1\s*\| \S+Z INFO bots\.tick: bot\.order action=buy_placed "
        rf"bot_id={bot_id} .*symbol=BTC/USDT",
        DEMO_FIRST_ORDER_TIMEOUT,
    )
    base = f"{stack.url}/api/bots/{bot_id}"
    orders = http("GET", f"{base}/orders", token=token)
    trades = http("GET", f"{base}/trades", token=token)
    assert orders.status == 200, orders.body
    assert orders.body["count"] >= 1, orders.body
    assert trades.status == 200, trades.body
    assert trades.body["count"] >= 1, trades.body
    assert orders.body["results"][-1]["client_order_id"].startswith(f"tb{bot_id}-")
    detail = http("GET", base, token=token).body
    position = detail["position"]
    assert set(position) >= {"qty", "entry_price", "pnl", "unrealized_pnl"}, detail
    bought = sum(float(t["qty"]) for t in trades.body["results"] if t["side"] == "buy")
    sold = sum(float(t["qty"]) for t in trades.body["results"] if t["side"] == "sell")
    if trades.body["count"] <= len(trades.body["results"]):  # every trade on the first page
        assert float(position["qty"]) == pytest.approx(bought - sold, abs=1e-9), detail


def test_it_runs_the_whole_stack_on_embedded_services_until_ctrl_c(
    var_dir: Path, record_property: Callable[[str, object], None]
) -> None:
    # Given a fresh var dir and neither DATABASE_URL nor REDIS_URL: SQLite and embedded Redis.
    with make_run(ROOT, var_dir, keep_services=False, extra_env={"LOG_FORMAT": "text"}) as stack:
        # When `make run` is started
        timings = _start_and_wait_healthy(stack, "web worker beat redis")

        # Then it printed the demo login, and that login works through the API
        demo = re.search(rf"Demo trader:\s+{re.escape(DEMO_EMAIL)}\s+/\s+(\S+)", stack.output())
        assert demo, "no demo trader login in the output" + stack.tail()
        password = demo[1]
        login = http(
            "POST", f"{stack.url}/api/auth/login", {"email": DEMO_EMAIL, "password": password}
        )
        assert login.status == 200, f"login: {login.status} {login.body}" + stack.tail()
        me = http("GET", f"{stack.url}/api/auth/me", token=login.body["token"])
        assert me.status == 200, f"/api/auth/me: {me.status} {me.body}" + stack.tail()
        assert me.body["email"] == DEMO_EMAIL

        # And the chart API serves 200 real BTC/USDT candles for 5m and for 1h, ending where the
        # sample ends (last 5m candle 2023-02-09 21:15 UTC; the 21:00 hour is incomplete)
        for timeframe, newest in (("5m", 1675977300000), ("1h", 1675972800000)):
            chart = http(
                "GET",
                f"{stack.url}/api/candles?exchange=bitget&symbol=BTC/USDT&timeframe={timeframe}",
                token=login.body["token"],
            )
            assert chart.status == 200, f"candles {timeframe}: {chart.body}" + stack.tail()
            assert len(chart.body["candles"]) == 200, f"{timeframe}: {len(chart.body['candles'])}"
            assert chart.body["candles"][-1][0] == newest

        # And wrong passwords are refused with 401, then throttled with 429 and Retry-After
        wrong = {"email": DEMO_EMAIL, "password": "x" + password}
        attempts = [http("POST", f"{stack.url}/api/auth/login", wrong) for _ in range(6)]
        summary = [(a.status, a.body) for a in attempts]
        assert [a.status for a in attempts] == [401] * 5 + [429], f"{summary}" + stack.tail()
        assert all(a.body["error"]["code"] == "invalid_credentials" for a in attempts[:5]), summary
        throttled = attempts[5]
        assert throttled.body["error"]["code"] == "too_many_attempts", summary
        assert 1 <= int(throttled.headers["retry-after"]) <= 60, throttled.headers

        # And the worker answers a ping over the embedded broker
        pong = stack.wait_celery_pong(timeout=60, destination=WORKER_NODE)
        assert f"{WORKER_NODE}: OK" in pong, pong

        # And the demo paper bot on the replay feed trades: its tick and order lines reach the
        # worker's stdout with its id, and its orders, trades and position are in the API
        _assert_the_demo_bot_trades(stack, login.body["token"])

        # And worker and beat log through the project's formatter, never Celery's own
        stack.wait_for_output(
            r"^\S+ worker\.1\s*\| \S+Z INFO celery\.apps\.worker: .* ready\.$", 30
        )
        stack.wait_for_output(r"^\S+ beat\.1\s*\| \S+Z INFO celery\.beat: beat: Starting", 30)
        for name in ("worker", "beat"):
            lines = stack.process_lines(name)
            assert any(PROJECT_LOG_LINE.match(line) for line in lines), (
                f"no {name} line in the project's log format" + stack.tail()
            )
            celery_format = [line for line in lines if CELERY_LOG_LINE.match(line)]
            assert celery_format == [], f"{name} logs in Celery's format: {celery_format}"
        assert unix_socket_answers(stack.redis_socket)

        # When Ctrl-C is pressed
        timings["shutdown_s"] = _assert_ctrl_c_stops_everything(stack)

        # Then no process of the stack is left and the embedded Redis no longer answers
        assert not unix_socket_answers(stack.redis_socket), "embedded redis still answers"
        _report(record_property, timings)


@pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="needs DATABASE_URL and REDIS_URL of external PostgreSQL and Redis",
)
def test_it_runs_the_whole_stack_on_external_services_until_ctrl_c(
    var_dir: Path, record_property: Callable[[str, object], None]
) -> None:
    # Given DATABASE_URL and REDIS_URL of running services (make run migrates that database)
    with make_run(ROOT, var_dir, keep_services=True, extra_env={"LOG_FORMAT": "text"}) as stack:
        # When `make run` is started, then it starts no Redis of its own and becomes healthy
        timings = _start_and_wait_healthy(stack, "web worker beat")
        assert stack.process_lines("redis") == [], "an embedded redis was started" + stack.tail()
        assert not stack.redis_socket.exists()

        # And the worker answers a ping over the external broker
        pong = stack.wait_celery_pong(timeout=60, destination=WORKER_NODE)
        assert f"{WORKER_NODE}: OK" in pong, pong

        # When Ctrl-C is pressed, then no process of the stack is left
        timings["shutdown_s"] = _assert_ctrl_c_stops_everything(stack)
        _report(record_property, timings)


def _demo_token(stack: Stack) -> str:
    demo = re.search(rf"Demo trader:\s+{re.escape(DEMO_EMAIL)}\s+/\s+(\S+)", stack.output())
    assert demo, "no demo trader login in the output" + stack.tail()
    login = http("POST", f"{stack.url}/api/auth/login", {"email": DEMO_EMAIL, "password": demo[1]})
    assert login.status == 200, f"login: {login.status} {login.body}" + stack.tail()
    return str(login.body["token"])


def _submit_backtest(stack: Stack, token: str) -> int:
    created = http("POST", f"{stack.url}/api/backtests", BACKTEST, token=token)
    assert created.status == 201, f"backtest: {created.status} {created.body}" + stack.tail()
    return int(created.body["id"])


def _wait_backtest_done(stack: Stack, token: str, backtest_id: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        backtest = http("GET", f"{stack.url}/api/backtests/{backtest_id}", token=token).body
        if backtest["status"] not in ("queued", "running") or time.monotonic() > deadline:
            assert backtest["status"] == "done", f"{backtest}" + stack.tail()
            return dict(backtest)
        time.sleep(0.5)


def _worker_ready_times(stack: Stack) -> list[float]:
    """When the worker said ``ready.``, each time it started (the project's log line)."""
    pattern = rf"^\S+ worker\.1\s*\| (\S+Z) INFO celery\.apps\.worker: {WORKER_NODE} ready\.$"
    stamps = re.findall(pattern, stack.output(), re.MULTILINE)
    return [datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() for stamp in stamps]


def _queued_backtest_ids(stack: Stack, queue: str = "backtests") -> list[int]:
    """The backtests whose task message waits in the broker's queue (read from Redis itself)."""
    ids = []
    for raw in redis_command(stack.redis_socket, "LRANGE", queue, "0", "-1"):
        message = json.loads(raw)
        if message["headers"]["task"] == RUN_BACKTEST_TASK:
            ids.append(json.loads(base64.b64decode(message["body"]))[0][0])
    return ids


@contextmanager
def _live_connection(stack: Stack, token: str) -> Iterator[ClientConnection]:
    """A WebSocket to the stack, authenticated with ``token`` (docs/websocket.md). Its queue is
    unbounded: events are read later, and the client must keep answering pings meanwhile."""
    url = f"ws://127.0.0.1:{stack.port}/ws/"
    with ws_connect(url, open_timeout=10, max_queue=None) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(ws.recv(timeout=10))["type"] == "auth.ok"
        yield ws


def _wait_event(ws: ClientConnection, wanted: Callable[[dict], bool], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if wanted(event):
            return dict(event)


def _drain(ws: ClientConnection, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    with suppress(TimeoutError):
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.05, deadline - time.monotonic()))


def _healthz_while(stack: Stack, until: Callable[[], bool], timeout: float) -> list[int]:
    """Poll /healthz until ``until()``; the statuses it answered (0: no answer)."""
    statuses, deadline = [], time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"still waiting after {timeout}s" + stack.tail()
        try:
            statuses.append(http("GET", f"{stack.url}/healthz", timeout=3).status)
        except OSError:
            statuses.append(0)
        time.sleep(0.2)
    return statuses


def test_it_restarts_a_killed_worker_and_a_killed_redis_and_loses_no_queued_backtest(
    var_dir: Path, record_property: Callable[[str, object], None]
) -> None:
    # Given the stack of `make run` on its embedded services, and the demo trader's token
    with make_run(ROOT, var_dir, keep_services=False, extra_env={"LOG_FORMAT": "text"}) as stack:
        timings = _start_and_wait_healthy(stack, "web worker beat redis")
        token = _demo_token(stack)
        stack.wait_celery_pong(timeout=60, destination=WORKER_NODE)
        others = {name: stack.pid(name) for name in ("web", "beat", "redis")}

        # When a backtest is submitted and the worker is killed with SIGKILL at once
        first = _submit_backtest(stack, token)
        worker = stack.pid("worker")
        killed_at = time.time()
        os.kill(worker, signal.SIGKILL)

        # Then /healthz answers 200 all along while a new worker starts, within 10 s
        statuses = _healthz_while(stack, lambda: len(_worker_ready_times(stack)) >= 2, 60)
        assert set(statuses) <= {200}, f"/healthz while the worker restarted: {statuses}"
        timings["worker_ready_after_kill_s"] = _worker_ready_times(stack)[1] - killed_at
        assert timings["worker_ready_after_kill_s"] < RESTARTED_WITHIN, stack.tail()
        assert re.search(rf"worker\.1 exited \(pid={worker}, exit code -9\)", stack.output())
        pong = stack.wait_celery_pong(timeout=30, destination=WORKER_NODE)
        timings["worker_pong_after_kill_s"] = time.time() - killed_at
        assert f"{WORKER_NODE}: OK" in pong, pong

        # And the backtest submitted before the kill finishes done, long before the scheduled
        # requeue (BACKTEST_REQUEUE_SECONDS), and no other process was restarted
        _wait_backtest_done(stack, token, first, timeout=60)
        assert {name: stack.pid(name) for name in others} == others

        # Given a WebSocket client connected all along (the rest: see the helper)
        with _live_connection(stack, token) as ws:
            timings["redis_back_after_kill_s"] = _kill_redis_with_a_backtest_queued(
                stack, token, ws
            )

        # When Ctrl-C is pressed, then no process of the stack is left
        timings["shutdown_s"] = _assert_ctrl_c_stops_everything(stack)
        assert not unix_socket_answers(stack.redis_socket), "embedded redis still answers"
        _report(record_property, timings)


def _kill_redis_with_a_backtest_queued(stack: Stack, token: str, ws: ClientConnection) -> float:
    """The Redis half of the healing test; returns the seconds Redis took to answer again."""
    # Given a WebSocket client, a frozen worker (its blocking read of the queue has timed
    # out) and a backtest whose message waits in the queue
    worker = stack.pid("worker")
    os.kill(worker, signal.SIGSTOP)
    try:
        time.sleep(2)
        second = _submit_backtest(stack, token)
        wait_for = time.monotonic() + 10
        while second not in _queued_backtest_ids(stack) and time.monotonic() < wait_for:
            time.sleep(0.1)
        assert second in _queued_backtest_ids(stack)

        # When the embedded Redis is killed with SIGKILL
        redis = stack.pid("redis")
        killed_at = time.time()
        os.kill(redis, signal.SIGKILL)
        _drain(ws, seconds=1)  # what was published before the kill

        # Then it answers again within 10 s, with the message still queued (its AOF)
        stack.wait_restarted("redis", redis, RESTARTED_WITHIN)
        while not unix_socket_answers(stack.redis_socket):
            assert time.time() - killed_at < RESTARTED_WITHIN, stack.tail()
            time.sleep(0.05)
        back_after = time.time() - killed_at
        assert second in _queued_backtest_ids(stack)

        # And the stack keeps serving
        assert stack.wait_healthy(RESTARTED_WITHIN).body == HEALTHY
    finally:
        os.kill(worker, signal.SIGCONT)

    # And the worker, running again, reconnects and finishes that backtest
    _wait_backtest_done(stack, token, second, timeout=90)

    # And the WebSocket client connected before Redis died receives events published after
    # its restart (daphne's channel layer subscribed again): nothing was published since
    # the kill, the worker being frozen, so the next bot event is a new one
    _wait_event(ws, lambda e: str(e["type"]).startswith("bot."), timeout=60)

    return back_after
