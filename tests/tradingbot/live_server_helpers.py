"""A real daphne serving ``/ws/``, and real clients to talk to it, for ``test_live_server.py``.

``daphne_serving`` starts daphne (``tests/daphne_process.py``) as the Procfile's
``web`` line starts it (short ping interval and timeout), its stdout and stderr in a log file the
tests read. Clients are the
``websockets`` library (asyncio) or, where a test needs what a well-behaved client never does (a
connection reset, a socket that stops reading), a raw TCP socket that speaks just enough of
RFC 6455. Group membership is read straight from Redis: the pub/sub channels' subscriber counts.

The fixtures at the end (``daphne``, ``server``, ``second_daphne``, ``make_user``, ``market``,
``make_bot``, ``bot``, ``token``, ``mark``) are imported by the test module for pytest to find.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from accounts.services import api_token_issue
from bots.models import Bot
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import paper_account, replay_bot, store_candles
from tests.conftest import server_env
from tests.daphne_process import Daphne, daphne_running
from tests.factories import UserFactory
from tradingbot.events import object_event, object_groups, publish_now

PING_INTERVAL = 1
PING_TIMEOUT = 2
MAX_MESSAGE_SIZE = 1_048_576
REPLY_TIMEOUT = 20.0  # generous: the machine is slow and shared; never a timing assertion
LOG_PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback|Exception|Error:")
LINES_PER_CONNECTION = 2


# --- the server ---------------------------------------------------------------------------------


# The options of the Procfile's ``web`` line, with a short ping interval and timeout.
PRODUCTION_OPTIONS = (
    "--access-log", os.devnull, "--websocket_timeout", "86400",
    "--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT),
    "--websocket-max-message-size", str(MAX_MESSAGE_SIZE),
)  # fmt: skip


@contextlib.contextmanager
def daphne_serving(*, env: Mapping[str, str], log_path: Path) -> Iterator[Daphne]:
    """The web server with the production options and text logs, once it is healthy."""
    env = {**env, "LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1"}
    with daphne_running(env=env, log_path=log_path, options=PRODUCTION_OPTIONS) as server:
        yield server


# --- the log ------------------------------------------------------------------------------------


def closed_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " ws.closed " in f"{line} "]


def wait_for_closed_lines(server: Daphne, mark: int, count: int, timeout: float = 60.0) -> str:
    """The log since ``mark`` once it has ``count`` ``ws.closed`` lines (disconnects are handled
    after the client has gone)."""
    deadline = time.monotonic() + timeout
    while len(closed_lines(text := server.log_since(mark))) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} ws.closed lines, log:\n{text[-5000:]}")
        time.sleep(0.1)
    return text


def wait_for_quiet_log(server: Daphne, quiet: float = 0.5, timeout: float = 15.0) -> None:
    """Until nothing has been written to the log for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    size = server.log_mark()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        written = server.log_mark()
        if written == size:
            return
        size = written


def assert_log_bounded(text: str, *, connections: int) -> None:
    """One ``ws.closed`` line per connection, a handful of lines in all, and nothing else that
    is a warning, an error or a traceback."""
    closed = closed_lines(text)
    assert len(closed) == connections, "\n".join(closed[-20:])
    others = [line for line in text.splitlines() if line not in closed]
    problems = [line for line in others if LOG_PROBLEM.search(line)]
    assert problems == [], "\n".join(problems[:20])
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) <= LINES_PER_CONNECTION * connections + 5, "\n".join(lines[:50])


def closed_fields(line: str) -> dict[str, str]:
    """``key=value`` pairs of a text-format ``ws.closed`` line."""
    return dict(re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", line))


# --- Redis groups -------------------------------------------------------------------------------
# The channel layer is Redis pub/sub: each daphne process subscribes once to a group's channel
# while any of its sockets is in the group, and unsubscribes when the last one leaves. Redis
# therefore counts processes, not sockets: a group whose count falls to zero has no member left
# in any process, which is what a leaked membership would prevent.


def group_channel(group: str) -> str:
    """The group's pub/sub channel, named as channels-redis names it (``_get_group_channel_name``,
    which needs a running event loop)."""
    layer: Any = settings.CHANNEL_LAYERS["default"]
    prefix = layer["CONFIG"]["prefix"]
    return f"{prefix}__group__{group}"


def group_subscribers(group: str) -> int:
    """How many processes (daphne, in these tests) are subscribed to the group's channel now."""
    from tradingbot.redis import get_redis

    name = group_channel(group)
    return int(dict(get_redis().pubsub_numsub(name))[name.encode()])


async def wait_for_subscribers(group: str, expected: int, *, timeout: float = 30.0) -> None:
    """Until ``expected`` processes hold the group (a disconnect leaves its groups shortly after
    the client has gone)."""
    deadline = time.monotonic() + timeout
    while (count := group_subscribers(group)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{group}: {count} subscribed processes, expected {expected}")
        await asyncio.sleep(0.1)


# --- websockets clients -------------------------------------------------------------------------


async def ws_connect(server: Daphne, **options: Any) -> ClientConnection:
    """A plain client: no pings of its own (it answers the server's), no compression, no proxy."""
    return await connect(
        server.ws_url, ping_interval=None, compression=None, proxy=None, open_timeout=60,
        close_timeout=10, max_size=4 * MAX_MESSAGE_SIZE, **options,
    )  # fmt: skip


async def receive(ws: ClientConnection, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def ws_authed(server: Daphne, token: str, **options: Any) -> ClientConnection:
    ws = await ws_connect(server, **options)
    await send(ws, {"type": "auth", "token": token})
    reply = await receive(ws)
    assert reply["type"] == "auth.ok", reply
    return ws


async def ws_subscribe(ws: ClientConnection, channel: str) -> dict[str, Any]:
    await send(ws, {"type": "subscribe", "channel": channel})
    return await receive(ws)


async def ws_ping(ws: ClientConnection) -> dict[str, Any]:
    await send(ws, {"type": "ping"})
    return await receive(ws)


async def received_within(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every message that arrives within ``seconds``."""
    messages: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                messages.append(json.loads(await ws.recv()))
    return messages


async def received_until(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Messages up to and including the first that ``done`` accepts, or all that arrived
    within ``timeout`` (for the test to show what it got instead)."""
    messages: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not messages or not done(messages[-1]):
                messages.append(json.loads(await ws.recv()))
    return messages


async def messages_then_close(
    ws: ClientConnection, timeout: float = REPLY_TIMEOUT
) -> tuple[list[dict[str, Any]], int | None]:
    """The messages before the server's close frame, and its code (None: no close frame)."""
    messages: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                messages.append(json.loads(await ws.recv()))
    except ConnectionClosed as closed:
        return messages, closed.rcvd.code if closed.rcvd is not None else None


def abort(ws: ClientConnection) -> None:
    """Drop the connection as a crashed client does: no close frame, the socket just closes."""
    ws.transport.abort()


@contextlib.asynccontextmanager
async def ws_session(server: Daphne, token: str) -> AsyncIterator[ClientConnection]:
    ws = await ws_authed(server, token)
    try:
        yield ws
    finally:
        await ws.close()


async def still_serves(server: Daphne, token: str) -> None:
    """The server answers ``/healthz`` and a new connection authenticates and pongs."""
    assert await asyncio.to_thread(server.healthy)
    async with ws_session(server, token) as ws:
        assert await ws_ping(ws) == {"type": "pong"}


# --- a raw client -------------------------------------------------------------------------------


class RawClient:
    """A WebSocket client on a bare socket (asyncio streams): the handshake, masked text frames
    out, unmasked frames in. It answers nothing by itself, pings included."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: Daphne) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        async with asyncio.timeout(REPLY_TIMEOUT * 3):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.writer.write(header + mask + masked)
        await self.writer.drain()

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame's opcode and payload (server frames are not masked)."""
        async with asyncio.timeout(REPLY_TIMEOUT):
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(size)

    async def receive_json(self) -> dict[str, Any]:
        """The next text message, skipping the server's pings (and never answering them)."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x1:
                message: dict[str, Any] = json.loads(payload)
                return message

    async def auth(self, token: str) -> None:
        await self.send_json({"type": "auth", "token": token})
        reply = await self.receive_json()
        assert reply["type"] == "auth.ok", reply

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): no close frame, no FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def closed_by_server(self) -> bool:
        """Whether the server has ended the connection: what is left to read comes to an end
        (a close, or a reset) rather than waiting for more."""
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                while await self.reader.read(65536):
                    pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            return False
        return True


# --- fixtures: the server, users, bots ---------------------------------------------------------


CANDLES = 600


@pytest.fixture(scope="module")
def daphne(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    log_path = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with daphne_serving(env=server_env(), log_path=log_path) as server:
        yield server


@pytest.fixture
def server(daphne: Daphne, transactional_db: Any) -> Iterator[Daphne]:
    """The running server; this test's data is committed, so that it sees it. Afterwards the
    log is let settle, so that a failed test's late lines are not the next test's."""
    if daphne.process.poll() is not None:
        pytest.fail(f"daphne exited early:\n{daphne.log()[-5000:]}")
    yield daphne
    wait_for_quiet_log(daphne)


@pytest.fixture
def second_daphne(server: Daphne, tmp_path: Path) -> Iterator[Daphne]:
    """Another daphne process on the same database and Redis (a second web host)."""
    with daphne_serving(env=server_env(), log_path=tmp_path / "daphne-2.log") as other:
        yield other


@pytest.fixture
def make_user(server: Daphne) -> Callable[[], Any]:
    def make() -> Any:
        user: Any = UserFactory()
        return user

    return make


@pytest.fixture
def market(server: Daphne) -> list[Any]:
    """Stored candles (bitget BTC/USDT 5m) and the strategy catalogue, for bots and backtests."""
    strategy_catalogue_sync()
    return store_candles(0, CANDLES)


@pytest.fixture
def make_bot(market: list[Any]) -> Callable[[Any], Bot]:
    def make(user: Any) -> Bot:
        bot = replay_bot(user, paper_account(user), start_ms=market[100].open_time).bot
        return bot

    return make


@pytest.fixture
def bot(make_user: Callable[[], Any], make_bot: Callable[[Any], Bot]) -> Bot:
    """A stopped replay bot of a new user (``bot.user``)."""
    return make_bot(make_user())


def token_of(user: Any) -> str:
    return api_token_issue(user=user).key


@pytest.fixture
def token(make_user: Callable[[], Any]) -> str:
    """An API token of a new user: the credentials of the test's connections."""
    return token_of(make_user())


@pytest.fixture
def mark(server: Daphne) -> int:
    """Where the server's log ended as the test began: ``server.log_since(mark)`` is the test's."""
    return server.log_mark()


def token_with_group(user: Any) -> tuple[str, str]:
    """A new API token's key, and the group its connections join (so that revoking it closes
    them)."""
    issued = api_token_issue(user=user)
    group = f"token-{issued.token.pk}"
    return issued.key, group


def status_event(bot: Bot, seq: int) -> dict[str, Any]:
    return object_event(
        "bot", "status", object_id=bot.pk, owner_id=bot.user_id,
        data={"status": "running", "last_error": "", "seq": seq},
    )  # fmt: skip


def publish(bot: Bot, seq: int) -> None:
    assert publish_now(object_groups("bot", bot.pk, bot.user_id), status_event(bot, seq))


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [message["data"]["seq"] for message in messages if message["type"] == "bot.status"]


def served_and_bounded(server: Daphne, mark: int, token: str, *, connections: int) -> None:
    """The server still serves (one more connection), and the log since ``mark`` is bounded."""
    asyncio.run(still_serves(server, token))
    text = wait_for_closed_lines(server, mark, connections + 1)
    assert_log_bounded(text, connections=connections + 1)


# --- connections that vanish ---------------------------------------------------------------------

BATCH = 50
DROP_KINDS = (
    "after_handshake",
    "auth_in_flight",
    "after_auth",
    "subscribe_in_flight",
    "after_subscribe",
    "reset_after_handshake",
    "reset_after_subscribe",
)


async def connect_and_drop(server: Daphne, token: str, channel: str, kind: str) -> None:
    """One connection that goes as far as ``kind`` says, then vanishes without a close frame:
    a FIN from a closed transport, or a TCP reset (``reset_*``)."""
    if kind.startswith("reset"):
        raw = await RawClient.open(server)
        if kind == "reset_after_subscribe":
            await raw.auth(token)
            await raw.send_json({"type": "subscribe", "channel": channel})
            assert (await reply_of(raw.receive_json))["type"] == "bot.snapshot"
        raw.reset()
        return
    ws = await ws_connect(server)
    if kind != "after_handshake":
        await send(ws, {"type": "auth", "token": token})
    if kind in ("after_auth", "subscribe_in_flight", "after_subscribe"):
        assert (await receive(ws))["type"] == "auth.ok"
    if kind in ("subscribe_in_flight", "after_subscribe"):
        await send(ws, {"type": "subscribe", "channel": channel})
    if kind == "after_subscribe":
        assert (await reply_of(lambda: receive(ws)))["type"] == "bot.snapshot"
    abort(ws)


REPLIES = ("pong", "auth.ok", "error", "unsubscribed")


async def reply_of(next_message: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """The next reply, past the events of the user's bots (an authenticated connection gets
    them through the user's group, and events may be published meanwhile)."""
    while True:
        message = await next_message()
        if message["type"] in REPLIES or message["type"].endswith(".snapshot"):
            return message


async def in_batches(count: int, cycle: Callable[[int], Any]) -> None:
    for first in range(0, count, BATCH):
        await asyncio.gather(*(cycle(index) for index in range(first, min(first + BATCH, count))))
