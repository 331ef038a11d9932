"""Benchmark: the live-updates WebSocket's fan-out, for 100, 1000 and 5000 connected clients.

It sets up its own stack: a SQLite database in ``$TRADINGBOT_VAR_DIR`` (a throwaway directory
when unset; ``DATABASE_URL``, if set, is used instead and must exist), migrated, the embedded
Redis (or ``REDIS_URL``), and for each size a user of its own with an API token and a draft bot
on a paper account, all committed.

Each size (a round) gets two fresh daphne processes on one Redis, started as the Procfile's
``web`` line starts them (access log off). N clients (the ``websockets`` library, asyncio, in
``--client-procs`` processes of their own) are split evenly over the two servers; each connects,
authenticates with the token, subscribes to ``bot:<id>`` and waits for the snapshot. At most
``--connect-concurrency`` handshakes are in flight at once (0: all at once, a reconnect storm).
The connections then sit idle for ``--idle`` seconds, as they do between a bot's events; then
each publisher sends ``--events`` ``bot.event`` events, ``--interval`` seconds apart,
``sent_at`` stamped just before ``publish_now``:

- ``process``: a plain subprocess that runs Django and publishes to ``object_groups`` (the
  user's group and the bot's, as the app does);
- ``celery``: the same from a real ``celery worker`` (solo pool, a queue of its own) running
  ``publish_task`` below, which the bench enqueues (``queue ms``: enqueue to ``sent_at``);
- ``bot-group``, the peer: a plain subprocess publishing to the bot's group alone. Every
  connection gets each event once either way, but through both groups it gets it twice and
  drops one (``protocol.admits``); ``÷ bot-group`` is what the second group costs.

A delivery's latency is its client's receive time (wall clock, stamped as the frame comes off
the socket, before it waits for the reader task) minus ``sent_at``: one machine, one clock.
Every client must get every event exactly once: the bench exits non-zero if one did not, if a
client could not connect, or if the layer still holds anything of the round's connections after
they all closed (``layer_residue``: group members with channels-redis's core layer, channel
subscriptions with its pub/sub layer), or if a server logged an error. Server memory is VmRSS of
the daphne processes before and after the clients connected; server CPU is theirs during a
publisher's phase. The per-server counts are the clients'; the servers' own (the ``sent`` of
their ``ws.closed`` log lines) follow as a check. ``p50 ÷ first`` compares with the run's first
size. Clients, servers, Redis and publisher share one machine (about one effective core): read
ratios, not milliseconds.

``--layer-options`` runs every process of the bench on the project's settings plus options for
the channel layer's Redis host (a settings module written into the var directory), to measure a
candidate fix; the first lines of the output say so. ``--asgi module:attribute`` has daphne
serve another application (on ``PYTHONPATH``), to measure a change to the consumer.

    .venv/bin/python bench/ws_fanout.py [--clients 100,1000,5000] [--events 20] [--quick]
    TRADINGBOT_VAR_DIR=/tmp/wsbench-var REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/ws_fanout.py
    .venv/bin/python bench/ws_fanout.py \\
        --layer-options '{"socket_timeout": null, "max_connections": 100000}'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import shared_task

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVERS = 2
FDS_SPARE = 200  # per process, besides its connections (Redis, database, logs, pipes)
SERVER_FLAGS = [  # the Procfile's web line
    "--proxy-headers", "--access-log", os.devnull, "--websocket_timeout", "86400",
    "--ping-interval", "20", "--ping-timeout", "30", "--websocket-max-message-size", "1048576",
]  # fmt: skip
MESSAGE = "order filled: bought 0.0125 BTC at 64,250.10 USDT (bench event, about a real one's size)"
PUBLISH_TASK = "bench.ws_fanout.publish_task"
PUBLISHERS = {
    "process": "a plain subprocess, to the user's and the bot's groups",
    "celery": "a celery worker task (solo pool), to both groups",
    "bot-group": "a plain subprocess, to the bot's group alone (the peer: half the layer messages)",
}


def bench_event(bot_id: int, user_id: int, phase: str, seq: int, enqueued_at: float) -> None:
    """Publish one ``bot.event`` now, stamped with the wall clock just before it is sent: to
    the user's and the bot's groups (``object_groups``), or, in the ``bot-group`` phase (the
    peer), to the bot's group alone."""
    from tradingbot.events import object_event, object_group, object_groups, publish_now

    data = {"level": "info", "message": MESSAGE, "phase": phase, "seq": seq,
            "enqueued_at": enqueued_at, "sent_at": time.time()}  # fmt: skip
    event = object_event("bot", "event", object_id=bot_id, owner_id=user_id, data=data)
    groups = object_groups("bot", bot_id, user_id)
    if phase == "bot-group":
        groups = [object_group("bot", bot_id)]
    if not publish_now(groups, event):
        raise RuntimeError("publish_now failed: the channel layer is unavailable")


@shared_task(name=PUBLISH_TASK, ignore_result=True)
def publish_task(bot_id: int, user_id: int, phase: str, seq: int, enqueued_at: float) -> None:
    bench_event(bot_id, user_id, phase, seq, enqueued_at)


# --- the clients (their own processes; no Django) ---------------------------------------------


def client_role() -> None:
    import uvloop

    spec = json.loads(sys.stdin.readline())
    uvloop.run(ClientFleet(spec).run())


class ClientFleet:
    """This process's share of the clients. It speaks to the bench in lines: it reads the spec,
    prints LOADED, waits for GO, connects every client and prints READY; on PHASE <name> it
    prints DONE once every client has every event of that phase or has lost its connection;
    on STOP it closes them all and prints RESULT."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.clients = [
            {"server": server, "events": {}, "error": None} for server in spec["servers"]
        ]
        self.complete: dict[str, set[int]] = {}
        self.lost: set[int] = set()
        self.announced: set[str] = set()
        self.connected = 0
        self.phase = ""

    async def run(self) -> None:
        from websockets.asyncio.client import ClientConnection

        self.connection_class = stamped(ClientConnection)
        say("LOADED")
        await command("GO")
        gate = asyncio.Semaphore(self.spec["concurrency"] or len(self.clients))
        started = time.time()
        opened = await asyncio.gather(*(self.open(client, gate) for client in self.clients))
        live = [(i, ws) for i, ws in enumerate(opened) if ws is not None]
        self.connected = len(live)
        say("READY", started=started, ready_at=time.time(), connected=self.connected)
        readers = [asyncio.create_task(self.read(ws, index)) for index, ws in live]
        while (word := await command("PHASE", "STOP")) != "STOP":
            self.phase = word.split()[1]
            self.check()
        await asyncio.gather(*(ws.close() for _, ws in live), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 30)
        say("RESULT", clients=self.clients)

    async def open(self, client: dict[str, Any], gate: asyncio.Semaphore) -> Any:
        from websockets.asyncio.client import connect

        async with gate:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.spec["open_timeout"]):
                    ws = await connect(
                        self.spec["urls"][client["server"]],
                        ping_interval=None,  # as a browser: daphne pings
                        create_connection=self.connection_class,
                        open_timeout=None,
                        max_size=2**20,
                    )
                    await self.handshake(ws)
            except Exception as exc:  # reported, counted, and the run fails
                client["error"] = f"{type(exc).__name__}: {exc}"[:200]
                return None
            client["connect_s"] = time.perf_counter() - started
            return ws

    async def handshake(self, ws: Any) -> None:
        await ws.send(json.dumps({"type": "auth", "token": self.spec["token"]}))
        await expect(ws, "auth.ok")
        await ws.send(json.dumps({"type": "subscribe", "channel": f"bot:{self.spec['bot_id']}"}))
        await expect(ws, "bot.snapshot")

    async def read(self, ws: Any, index: int) -> None:
        from websockets.exceptions import ConnectionClosed

        client = self.clients[index]
        try:
            async for text in ws:
                arrived = ws.arrivals.popleft()
                message = json.loads(text)
                if message.get("type") == "bot.event":
                    self.record(index, message["data"], arrived)
                else:
                    client["error"] = f"unexpected message {text[:120]}"
        except ConnectionClosed as exc:
            if exc.rcvd is None or exc.rcvd.code != 1000:
                client["error"] = f"closed: {exc}"[:200]
                self.lost.add(index)
                self.check()

    def record(self, index: int, data: dict[str, Any], arrived: float) -> None:
        phase = data["phase"]
        events = self.clients[index]["events"].setdefault(phase, [])
        latency, queued = arrived - data["sent_at"], data["sent_at"] - data["enqueued_at"]
        events.append([data["seq"], round(latency * 1000, 3), round(queued * 1000, 3)])
        if len(events) == self.spec["events"]:
            self.complete.setdefault(phase, set()).add(index)
            self.check()

    def check(self) -> None:
        """DONE for the current phase, once, when no client can get more of its events."""
        settled = self.complete.get(self.phase, set()) | self.lost
        if self.phase and self.phase not in self.announced and len(settled) == self.connected:
            self.announced.add(self.phase)
            say("DONE", phase=self.phase)


def stamped(base: type) -> type:
    """``base`` (websockets' ClientConnection) stamping each text frame with the wall clock as
    it comes off the socket, before it waits in the connection's queue for the reader task."""
    from websockets.frames import Frame, Opcode

    class StampedConnection(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.arrivals: deque[float] = deque()

        def process_event(self, event: Any) -> None:
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.arrivals.append(time.time())
            super().process_event(event)

    return StampedConnection


async def expect(ws: Any, kind: str) -> None:
    text = await ws.recv()
    ws.arrivals.popleft()
    if json.loads(text).get("type") != kind:
        raise RuntimeError(f"expected {kind}, got {text[:160]}")


async def command(*words: str) -> str:
    """The next line from the bench that starts with one of ``words``."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:  # the bench is gone
            raise SystemExit(1)
        if line.split()[0] in words:
            return line.strip()


def say(word: str, **fields: Any) -> None:
    print(word, json.dumps(fields), flush=True)


# --- the publisher as a plain process ------------------------------------------------------------


def publish_role() -> None:
    """``--role publish``: JSON arguments on stdin; prints PUBLISHED with the failure count."""
    spec = json.loads(sys.stdin.readline())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")
    import django

    django.setup()
    failed, start = 0, time.monotonic()
    for seq in range(spec["events"]):
        time.sleep(max(0.0, start + seq * spec["interval"] - time.monotonic()))
        try:
            bench_event(spec["bot_id"], spec["user_id"], spec["phase"], seq, time.time())
        except RuntimeError:
            failed += 1
    say("PUBLISHED", failed=failed)


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class Process:
    """A child process whose stdout lines are read by a thread into ``lines``."""

    name: str
    popen: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def wait_for(self, word: str, deadline: float, **match: Any) -> dict[str, Any] | None:
        """The fields of the next ``word`` line (with ``match``'s values), or None at
        ``deadline`` (monotonic); other lines are dropped."""
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                if self.popen.poll() is not None:
                    return None
                continue
            if line.startswith(word + " "):
                fields = dict(json.loads(line[len(word) + 1 :]))
                if all(fields.get(key) == value for key, value in match.items()):
                    return fields
        return None


def spawn(name: str, args: list[str], env: dict[str, str], log: Path) -> Process:
    popen = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=log.open("a"),
    )  # fmt: skip
    return Process(name, popen)


def stop(popen: subprocess.Popen[Any]) -> None:
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=10)


@dataclass
class Server:
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def closed_lines(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [r for r in records if r.get("message") == "ws.closed"]

    def problems(self) -> Counter[str]:
        """The server's ERROR and WARNING lines by message (and a traceback's last line), and
        its connections closed for a reason of the server's."""
        found = Counter[str]()
        for line in self.log_path.read_text(errors="replace").splitlines():
            record = json.loads(line) if line.startswith("{") else {"level": "ERROR"}
            if record.get("message") == "ws.closed" and record["reason"]:
                found[f"ws.closed reason={record['reason']}"] += 1
            elif record["level"] in ("ERROR", "WARNING", "CRITICAL"):
                last = str(record.get("exc_info", "")).strip().rsplit("\n", 1)[-1]
                message = re.sub(r"<Task .*>> for connection <[^>]*>", "<task> for <connection>",
                                 record.get("message", line))  # fmt: skip
                found[f"{message[:100]}{' / ' + last[:100] if last else ''}"] += 1
        return found


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], log_path: Path, application: str) -> Server:
    port = free_port()
    popen = subprocess.Popen(
        [sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port),
         *SERVER_FLAGS, application],
        cwd=ROOT, env={**env, "LOG_FORMAT": "json"}, stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and popen.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return Server(port, popen, log_path)
        except OSError:
            time.sleep(0.2)
    popen.kill()
    raise SystemExit(f"daphne did not come up:\n{log_path.read_text(errors='replace')}")


@dataclass
class Worker:
    queue: str
    popen: subprocess.Popen[bytes]


def start_worker(env: dict[str, str], log_path: Path) -> Worker:
    from tradingbot.celery import app

    name = f"wsbench-{uuid.uuid4().hex[:8]}"
    popen = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tradingbot", "worker", "--pool", "solo",
         "--queues", name, "--hostname", f"{name}@bench", "--include", "bench.ws_fanout",
         "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[f"{name}@bench"], timeout=0.5):
        if popen.poll() is not None or time.monotonic() > deadline:
            popen.kill()
            raise SystemExit(f"the celery worker did not start:\n{log_path.read_text()}")
    return Worker(name, popen)


@dataclass
class Fixture:
    user_id: int
    bot_id: int
    token: str


def create_fixture(size: int) -> Fixture:
    """A user with an API token and a draft (stopped) bot on a paper account, committed."""
    from accounts.models import User
    from accounts.services import api_token_issue
    from bots import services
    from bots.services import BotConfig
    from markets import services as market_services

    user = User.objects.create_user(f"wsbench-{size}-{uuid.uuid4().hex[:8]}@example.com")
    account = market_services.exchange_account_open(
        user=user, exchange="bitget", label="paper", mode="paper"
    )
    config = BotConfig(
        name="fan-out", exchange_account=account, symbol="BTC/USDT", timeframe="5m",
        strategy="ma_cross", params={"fast": 5, "slow": 20},
    )  # fmt: skip
    bot = services.bot_create(user=user, config=config)
    return Fixture(user.pk, bot.pk, api_token_issue(user=user).key)


def layer_residue() -> int:
    """What connections hold in the channel layer's Redis database: with channels-redis's core
    layer, group members (its sorted sets, under its own key names); with the pub/sub layer,
    channel subscriptions of the connections to this database (a daphne process subscribes a
    channel per socket and one per group its sockets joined)."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    if config["BACKEND"].endswith("PubSubChannelLayer"):
        db = str(client.connection_pool.connection_kwargs.get("db", 0))
        return sum(int(c.get("sub", 0)) for c in client.client_list() if str(c["db"]) == db)
    prefix = config["CONFIG"].get("prefix", "asgi")
    return sum(int(client.zcard(key)) for key in client.scan_iter(f"{prefix}:group:*"))


# --- a round: one size ---------------------------------------------------------------------------


@dataclass
class Phase:
    publisher: str
    latencies: list[float]  # ms, every delivery
    queued: list[float]  # ms, enqueue to sent_at (celery), one per event
    delivered: list[int]  # per server, client-side
    missing: int
    duplicates: int
    drained: bool
    cpu: list[float]  # per server, seconds during the phase
    failed_publishes: int = 0

    def cpu_per_message(self) -> float:
        """Microseconds of server CPU per delivery."""
        return sum(self.cpu) * 1e6 / sum(self.delivered) if any(self.delivered) else float("nan")


@dataclass
class Round:
    size: int
    connected: int = 0
    connect_seconds: float = float("nan")
    connect_each: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    rss_before: list[float] = field(default_factory=list)
    rss_after: list[float] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    server_sent: list[int] = field(default_factory=list)  # events, from the servers' logs
    server_closed: list[int] = field(default_factory=list)
    held_in_layer: int = -1  # layer_residue() with every client connected
    left_in_layer: int = -1  # and after they all closed
    problems: Counter[str] = field(default_factory=Counter)
    note: str = ""


@dataclass
class Stack:
    """What every round shares."""

    args: argparse.Namespace
    env: dict[str, str]
    logs: Path
    worker: Worker | None


@dataclass
class Live:
    """One round's fixture, servers and client processes."""

    size: int
    fixture: Fixture
    servers: list[Server]
    fleets: list[Process] = field(default_factory=list)
    residue_before: int = 0  # layer_residue() before the clients

    def cpu_seconds(self) -> list[float]:
        return [server.cpu_seconds() for server in self.servers]


def run_round(stack: Stack, size: int) -> Round:
    from accounts.models import User
    from bots.models import Bot

    result = Round(size)
    fixture = create_fixture(size)
    logs = stack.logs
    live = Live(size, fixture, [
        start_server(stack.env, logs / f"daphne-{size}-{i + 1}.log", stack.args.asgi)
        for i in range(SERVERS)
    ])  # fmt: skip
    try:
        time.sleep(1)
        result.rss_before = [s.rss_mib() for s in live.servers]
        live.residue_before = layer_residue()
        start_fleets(stack, live)
        connect(stack, live, result)
        if result.connected:
            time.sleep(1)
            result.rss_after = [s.rss_mib() for s in live.servers]
            result.held_in_layer = layer_residue() - live.residue_before
            time.sleep(max(0.0, stack.args.idle - 1))  # quiet, as between a real bot's events
            result.phases = [run_phase(stack, live, p) for p in stack.args.publishers]
        clients = finish(live)
        result.connect_each = [c["connect_s"] for c in clients if c.get("connect_s") is not None]
        result.errors.update(c["error"] for c in clients if c["error"])
        for phase in result.phases:
            tally(phase, clients, stack.args.events)
        settle(live, result, sum(1 for c in clients if "connect_s" in c and not c["error"]))
    finally:
        for fleet in live.fleets:
            stop(fleet.popen)
        for server in live.servers:
            stop(server.popen)
        Bot.objects.filter(user_id=fixture.user_id).delete()
        User.objects.filter(pk=fixture.user_id).delete()  # and its paper account
    return result


def start_fleets(stack: Stack, live: Live) -> None:
    """The client processes, loaded; client i goes to server i % 2 and to process (i // 2) %
    procs, so that every process has clients of both servers."""
    procs = min(stack.args.client_procs, live.size)
    concurrency = stack.args.connect_concurrency
    for index in range(procs):
        log = stack.logs / f"clients-{live.size}-{index}.log"
        fleet = spawn(f"clients-{index}", [__file__, "--role", "clients"], stack.env, log)
        live.fleets.append(fleet)
        fleet.send(json.dumps({
            "urls": [f"ws://127.0.0.1:{s.port}/ws/" for s in live.servers],
            "servers": [i % SERVERS for i in range(live.size) if (i // SERVERS) % procs == index],
            "token": live.fixture.token, "bot_id": live.fixture.bot_id,
            "events": stack.args.events, "open_timeout": stack.args.open_timeout,
            "concurrency": max(1, concurrency // procs) if concurrency else 0,
        }))  # fmt: skip
    deadline = time.monotonic() + 60
    if any(fleet.wait_for("LOADED", deadline) is None for fleet in live.fleets):
        raise SystemExit(f"a client process did not start; see {stack.logs}")


def connect(stack: Stack, live: Live, result: Round) -> None:
    for fleet in live.fleets:
        fleet.send("GO")
    deadline = time.monotonic() + stack.args.open_timeout + 30 + live.size * 0.05
    ready = [fleet.wait_for("READY", deadline) for fleet in live.fleets]
    if any(r is None for r in ready):
        result.note = "client processes did not report within the connect deadline"
        return
    started = min(r["started"] for r in ready if r)
    result.connect_seconds = max(r["ready_at"] for r in ready if r) - started
    result.connected = sum(r["connected"] for r in ready if r)


def run_phase(stack: Stack, live: Live, publisher: str) -> Phase:
    args, cpu_before = stack.args, live.cpu_seconds()
    spec = {"bot_id": live.fixture.bot_id, "user_id": live.fixture.user_id, "phase": publisher,
            "events": args.events, "interval": args.interval}  # fmt: skip
    for fleet in live.fleets:
        fleet.send(f"PHASE {publisher}")
    failed = 0
    if publisher == "celery":
        assert stack.worker is not None
        enqueue(stack.worker, spec)
    else:
        proc = spawn("publisher", [__file__, "--role", "publish"], stack.env,
                     stack.logs / "publish.log")  # fmt: skip
        proc.send(json.dumps(spec))
        published = proc.wait_for("PUBLISHED", time.monotonic() + 120 + args.events * 2)
        failed = args.events if published is None else int(published["failed"])
        stop(proc.popen)
    deadline = time.monotonic() + args.drain_seconds + live.size * args.events * 0.002
    drained = all(fleet.wait_for("DONE", deadline, phase=publisher) is not None
                  for fleet in live.fleets)  # fmt: skip
    cpu = [after - before for after, before in zip(live.cpu_seconds(), cpu_before, strict=True)]
    return Phase(publisher, [], [], [0] * SERVERS, 0, 0, drained, cpu, failed)


def enqueue(worker: Worker, spec: dict[str, Any]) -> None:
    from tradingbot.celery import app

    start = time.monotonic()
    for seq in range(spec["events"]):
        time.sleep(max(0.0, start + seq * spec["interval"] - time.monotonic()))
        app.send_task(PUBLISH_TASK, queue=worker.queue, expires=120, kwargs={
            "bot_id": spec["bot_id"], "user_id": spec["user_id"], "phase": spec["phase"],
            "seq": seq, "enqueued_at": time.time(),
        })  # fmt: skip


def finish(live: Live) -> list[dict[str, Any]]:
    """Every client, closed by its process, with what it recorded."""
    for fleet in live.fleets:
        fleet.send("STOP")
    deadline = time.monotonic() + 60 + live.size * 0.02
    results = [fleet.wait_for("RESULT", deadline) for fleet in live.fleets]
    return [c for r in results if r for c in r["clients"]]


def tally(phase: Phase, clients: list[dict[str, Any]], expected: int) -> None:
    queued: dict[int, float] = {}
    for client in clients:
        if client.get("connect_s") is None:
            continue
        events = client["events"].get(phase.publisher, [])
        seqs = {seq for seq, _, _ in events}
        phase.missing += expected - len(seqs)
        phase.duplicates += len(events) - len(seqs)
        phase.delivered[client["server"]] += len(events)
        phase.latencies.extend(latency for _, latency, _ in events)
        queued.update({seq: queue_ms for seq, _, queue_ms in events})
    phase.queued = list(queued.values())


def settle(live: Live, result: Round, open_at_stop: int) -> None:
    """After the clients closed: every connection logged, every group membership gone. (A
    connection that the server lost by an exception logs nothing: wait for the others.)"""
    deadline = time.monotonic() + 30 + open_at_stop * 0.01
    while time.monotonic() < deadline:
        if sum(len(s.closed_lines()) for s in live.servers) >= open_at_stop:
            break
        time.sleep(0.5)
    time.sleep(1)
    for server in live.servers:
        closed = server.closed_lines()
        result.server_closed.append(len(closed))
        result.server_sent.append(
            sum(max(0, int(r["sent"]) - 2) for r in closed)
        )  # - auth.ok, snapshot
        result.problems.update(server.problems())
    result.left_in_layer = layer_residue() - live.residue_before


# --- the report ----------------------------------------------------------------------------------


def pct(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def connections_table(rounds: list[Round]) -> None:
    print(
        "\n1. connecting: each client connects, authenticates by token, subscribes to bot:<id> "
        "and gets the snapshot; layer held/left: group members (core layer) or channel\n"
        "subscriptions (pub/sub) in Redis with every client connected, and after they closed\n"
        f"{'clients':>7} {'connected':>9} {'all in s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'RSS before MB':>13} {'RSS after MB':>12} {'KiB/conn':>8} {'#1/#2 after MB':>14} "
        f"{'closed #1/#2':>12} {'layer held':>10} {'left':>5}"
    )
    for r in rounds:
        before, after = sum(r.rss_before), sum(r.rss_after) if r.rss_after else float("nan")
        per_conn = (after - before) * 1024 / r.connected if r.connected else float("nan")
        split = "/".join(f"{x:.0f}" for x in r.rss_after) or "-"
        closed = "/".join(str(x) for x in r.server_closed) or "-"
        print(
            f"{r.size:>7} {r.connected:>9} {r.connect_seconds:>8.2f} "
            f"{pct(r.connect_each, 0.5) * 1000:>7.0f} {pct(r.connect_each, 0.99) * 1000:>7.0f} "
            f"{before:>13.1f} {after:>12.1f} {per_conn:>8.1f} {split:>14} {closed:>12} "
            f"{r.held_in_layer:>10} {r.left_in_layer:>5}"
        )
        for error, count in r.errors.most_common(5):
            print(f"{'':>7} {count} x {error}")
        if r.note:
            print(f"{'':>7} {r.note}")


def delivery_table(rounds: list[Round], args: argparse.Namespace) -> None:
    print(
        f"\n2. delivery: {args.events} bot.event events per publisher, {args.interval * 1000:.0f}"
        " ms apart; latency = client receive - sent_at; CPU = both daphne processes'\n"
        f"{'clients':>7} {'publisher':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'delivered':>9} {'missing':>7} {'dups':>4} {'per server #1/#2':>16} "
        f"{'CPU s #1/#2':>11} {'µs CPU/msg':>10} {'÷ bot-group':>11} {'queue ms':>8} "
        f"{'p50 ÷ first':>11}"
    )
    first: dict[str, float] = {}
    for r in rounds:
        peer = {p.publisher: p.cpu_per_message() for p in r.phases}.get("bot-group")
        for p in r.phases:
            expected = r.connected * args.events
            p50 = pct(p.latencies, 0.5)
            first.setdefault(p.publisher, p50)
            print(
                f"{r.size:>7} {p.publisher:>9} {p50:>8.1f} {pct(p.latencies, 0.99):>8.1f} "
                f"{max(p.latencies, default=float('nan')):>8.1f} "
                f"{(sum(p.delivered) - p.duplicates) / max(1, expected):>9.2%} {p.missing:>7} "
                f"{p.duplicates:>4} {'/'.join(str(x) for x in p.delivered):>16} "
                f"{'/'.join(f'{x:.1f}' for x in p.cpu):>11} {p.cpu_per_message():>10.0f} "
                f"{p.cpu_per_message() / peer if peer else float('nan'):>10.2f}x "
                f"{statistics.median(p.queued) if p.queued else float('nan'):>8.1f} "
                f"{p50 / first[p.publisher]:>10.1f}x"
                + ("" if p.drained else "  (not drained by the deadline)")
                + (f"  ({p.failed_publishes} publishes failed)" if p.failed_publishes else "")
            )
        sent = "/".join(str(x) for x in r.server_sent)
        print(f"{'':>7} the servers' own count of events sent (all publishers), #1/#2: {sent}")


def failures(rounds: list[Round], args: argparse.Namespace) -> list[str]:
    found = []
    for r in rounds:
        if r.connected < r.size:
            found.append(f"{r.size} clients: only {r.connected} connected")
        for p in r.phases:
            if p.missing or p.duplicates:
                found.append(
                    f"{r.size} clients, {p.publisher}: {p.missing} events missing, "
                    f"{p.duplicates} duplicated"
                )
        if r.left_in_layer:
            found.append(f"{r.size} clients: {r.left_in_layer} left in the channel layer after "
                         "every client closed")  # fmt: skip
    return found


# --- main --------------------------------------------------------------------------------------


def prepare_environment(var_dir: Path, layer_options: str) -> dict[str, str]:
    """The environment of this process and its children, set before Django loads. With
    ``layer_options``, every process runs on a settings module of this run's own, in
    ``var_dir``: the project's, with those options added to the channel layer's host."""
    env = {
        "TRADINGBOT_VAR_DIR": str(var_dir),
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{var_dir}/wsbench.sqlite3",
        "DJANGO_SETTINGS_MODULE": "tradingbot.settings",
    }
    if layer_options:
        (var_dir / "wsbench_settings.py").write_text(
            "from tradingbot.settings import *  # noqa: F403\n\n"
            'CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0].update('
            f"{json.loads(layer_options)!r})\n"
        )
        path = os.pathsep.join(x for x in (str(var_dir), os.environ.get("PYTHONPATH")) if x)
        env.update(DJANGO_SETTINGS_MODULE="wsbench_settings", PYTHONPATH=path)
        sys.path.insert(0, str(var_dir))
    os.environ.update(env)
    children = dict(os.environ)
    os.environ["LOG_LEVEL"] = "WARNING"  # this process's setup lines; the servers' stay INFO
    return children


def raise_fd_limit(sizes: list[int], client_procs: int) -> tuple[int, list[int]]:
    """Raise the soft open-file limit to the hard one (children inherit it); the sizes that fit:
    a daphne process holds half the connections, a client process its share."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 1_048_576
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    fits = [n for n in sizes if max(n / SERVERS, n / client_procs) + FDS_SPARE <= limit]
    return limit, fits


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--role", choices=["bench", "clients", "publish"], default="bench", help=argparse.SUPPRESS
    )
    parser.add_argument("--clients", default="100,1000,5000", help="sizes, comma-separated")
    parser.add_argument("--events", type=int, default=20, help="per publisher and size")
    parser.add_argument("--interval", type=float, default=0.15, help="seconds between events")
    parser.add_argument(
        "--idle",
        type=float,
        default=6.0,
        help="seconds the connections sit idle before the first event (channels-redis waits "
        "for a message 5 s at a time)",
    )
    parser.add_argument(
        "--publishers", default=",".join(PUBLISHERS), help=f"some of {', '.join(PUBLISHERS)}"
    )
    parser.add_argument("--client-procs", type=int, default=2, help="client processes")
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=200,
        help="handshakes in flight at once, over all client processes; 0: all",
    )
    parser.add_argument("--open-timeout", type=float, default=60.0, help="per client, seconds")
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="wait after the last event, plus 2 ms per expected delivery",
    )
    parser.add_argument(
        "--layer-options",
        default="",
        help="JSON added to the channel layer's host for this run only (not the project's), "
        'e.g. \'{"socket_timeout": null, "max_connections": 100000}\'',
    )
    parser.add_argument(
        "--asgi",
        default="tradingbot.asgi:application",
        help="the application daphne serves (another one, on PYTHONPATH, to try a change)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 clients, 10 events")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.events, args.drain_seconds = "50", 10, 10.0
    args.sizes = [int(x) for x in args.clients.split(",") if x.strip()]
    args.publishers = [x.strip() for x in args.publishers.split(",") if x.strip()]
    if not args.publishers or set(args.publishers) - set(PUBLISHERS):
        parser.error(f"--publishers takes some of {', '.join(PUBLISHERS)}")
    return args


def main() -> None:
    args = parse_args()
    if args.role == "clients":
        client_role()
    elif args.role == "publish":
        publish_role()
    else:
        given = os.environ.get("TRADINGBOT_VAR_DIR")
        var_dir = Path(given or tempfile.mkdtemp(prefix="wsbench-"))
        var_dir.mkdir(parents=True, exist_ok=True)
        try:
            sys.exit(run(args, var_dir))
        finally:
            if not given:
                shutil.rmtree(var_dir, ignore_errors=True)


def run(args: argparse.Namespace, var_dir: Path) -> int:
    env = prepare_environment(var_dir, args.layer_options)
    limit, sizes = raise_fd_limit(args.sizes, args.client_procs)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from strategies.services import strategy_catalogue_sync

    embedded = None
    if settings.EMBEDDED_REDIS:
        from tradingbot import embedded_redis

        embedded = embedded_redis.start_background(var_dir / "redis.sock")
    logs = Path(tempfile.mkdtemp(prefix="wsbench-logs-", dir=var_dir))
    worker = None
    try:
        call_command("migrate", verbosity=0, interactive=False)
        strategy_catalogue_sync()
        if "celery" in args.publishers:
            worker = start_worker(env, logs / "worker.log")
        describe(args, settings, embedded is not None, limit, sizes)
        rounds = measure(Stack(args, env, logs, worker), sizes)
        connections_table(rounds)
        delivery_table(rounds, args)
        return verdict(rounds, args, logs)
    finally:
        if worker is not None:
            stop(worker.popen)
        if embedded is not None:
            embedded.terminate()
            embedded.wait(timeout=10)


def describe(
    args: argparse.Namespace, settings: Any, embedded: bool, limit: int, sizes: list[int]
) -> None:
    import channels_redis
    import redis

    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    layer = settings.CHANNEL_LAYERS["default"]
    config, backend = layer["CONFIG"], layer["BACKEND"].rsplit(".", 1)[-1]
    host = {k: v for k, v in config["hosts"][0].items() if k != "address"}
    if backend == "RedisChannelLayer":  # the core layer's limits; pub/sub has neither
        backend += (f" (capacity {config.get('capacity', 100)}, group_expiry "
                    f"{config.get('group_expiry', 86400)} s)")  # fmt: skip
    overridden = " -- OVERRIDDEN for this run (--layer-options), not the project's"
    print(
        f"database {db}, redis {'embedded (unix socket)' if embedded else settings.REDIS_URL}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, open files {limit}\n"
        f"{SERVERS} daphne processes (the Procfile's web flags) serving {args.asgi}, "
        f"{args.client_procs} client "
        f"processes, {args.connect_concurrency or 'unlimited'} handshakes in flight, "
        f"{args.idle:g} s idle before the first event; "
        f"publishers: {'; '.join(f'{p}: {PUBLISHERS[p]}' for p in args.publishers)}\n"
        f"channels-redis {channels_redis.__version__} {backend}, redis-py {redis.__version__}, "
        f"host options {host or 'none (redis-py defaults)'}"
        f"{overridden if args.layer_options else ''}",
        flush=True,
    )
    for size in sorted(set(args.sizes) - set(sizes)):
        print(f"{size} clients skipped: {limit} open files are too few", flush=True)


def measure(stack: Stack, sizes: list[int]) -> list[Round]:
    rounds = []
    for size in sizes:
        started = time.monotonic()
        rounds.append(result := run_round(stack, size))
        print(f"{size} clients: {result.connected} connected, round took "
              f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
        if result.connected < size:
            print(f"stopping: not every client of {size} connected (the machine cannot, here)")
            break
    return rounds


def verdict(rounds: list[Round], args: argparse.Namespace, logs: Path) -> int:
    problems = sum((r.problems for r in rounds), Counter[str]())
    print(
        f"\nserver log errors, warnings and closes for a server's reason: {problems.total()}; "
        f"load average after the run: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for message, count in problems.most_common(5):
        print(f"  {count} x {message}")
    found = failures(rounds, args)
    for line in found:
        print(f"FAILED: {line}")
    if found or problems:
        print(f"logs kept in {logs}")
        return 1
    shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main()
