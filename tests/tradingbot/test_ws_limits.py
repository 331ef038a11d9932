"""Protocol faults on a REAL daphne process, as the Procfile's ``web`` line runs it.

A message over ``--websocket-max-message-size`` (whole, or fragmented), or a text frame that is
not UTF-8, is refused by the server's WebSocket protocol before the consumer sees it: the client
gets a close frame with the RFC 6455 code (1009, 1007) and a reason, not a dropped TCP (1006).
The server goes on serving: a socket subscribed before still gets its events, a new one
connects. The log has the connection's one ``ws.closed`` line, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bots.models import Bot
from tests.daphne_process import SERVER_MODULE
from tests.tradingbot.live_server_helpers import (
    MAX_MESSAGE_SIZE,
    Daphne,
    RawClient,
    bot,
    closed_fields,
    closed_lines,
    daphne,
    make_bot,
    make_user,
    mark,
    market,
    messages_then_close,
    publish,
    receive,
    received_until,
    seqs,
    served_and_bounded,
    server,
    token,
    token_of,
    wait_for_closed_lines,
    ws_authed,
    ws_connect,
    ws_subscribe,
)

__all__ = ["bot", "daphne", "make_bot", "make_user", "mark", "market", "server", "token"]

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
OVERSIZED = 2 * 1024 * 1024  # the tester's frame: twice the limit
FRAGMENT = 512 * 1024  # each under the limit; the message over it from the third one


def close_of(closed: ConnectionClosed) -> tuple[int | None, str]:
    """The code and reason of the server's close frame (None: the TCP was dropped without one)."""
    return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd is not None else (None, "")


async def sent_then_closed(
    ws: ClientConnection, message: object, *, text: bool
) -> ConnectionClosed:
    """Send ``message`` (an iterable is sent as fragments) and wait for the connection to end.
    The server may close while the client is still sending: that is the point."""
    with contextlib.suppress(ConnectionClosed):
        await ws.send(message, text=text)  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(30):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed
    raise AssertionError("unreachable")


def log_line_of(server: Daphne, mark: int) -> dict[str, str]:
    [line] = closed_lines(wait_for_closed_lines(server, mark, 1))
    return closed_fields(line)


# --- oversized ----------------------------------------------------------------------------------


def test_a_2_mib_text_frame_is_closed_with_1009_and_a_reason(
    server: Daphne, token: str, mark: int
) -> None:
    async def scenario() -> ConnectionClosed:
        # given
        ws = await ws_authed(server, token)
        # when
        return await sent_then_closed(ws, "x" * OVERSIZED, text=True)

    closed = asyncio.run(scenario())
    # then
    code, reason = close_of(closed)
    assert code == 1009, closed
    assert "exceeds payload limit of 1048576" in reason
    fields = log_line_of(server, mark)
    assert (fields["code"], fields["reason"]) == ("1009", "message_too_big")
    served_and_bounded(server, mark, token, connections=1)


def test_a_fragmented_message_over_the_limit_is_closed_with_1009(
    server: Daphne, token: str, mark: int
) -> None:
    async def scenario() -> ConnectionClosed:
        # given
        ws = await ws_authed(server, token)
        # when: four fragments of 512 KiB, each under the limit, 2 MiB in all
        return await sent_then_closed(ws, ["y" * FRAGMENT] * 4, text=True)

    closed = asyncio.run(scenario())
    # then
    code, reason = close_of(closed)
    assert code == 1009, closed
    assert "message size" in reason
    assert log_line_of(server, mark)["reason"] == "message_too_big"
    served_and_bounded(server, mark, token, connections=1)


def test_an_oversized_binary_frame_before_authentication_is_closed_with_1009(
    server: Daphne, token: str, mark: int
) -> None:
    async def scenario() -> ConnectionClosed:
        # given: a connection that has not authenticated
        ws = await ws_connect(server)
        # when
        return await sent_then_closed(ws, b"\0" * (MAX_MESSAGE_SIZE + 1), text=False)

    closed = asyncio.run(scenario())
    # then
    assert close_of(closed)[0] == 1009, closed
    served_and_bounded(server, mark, token, connections=1)


def test_a_client_that_never_answers_the_close_still_gets_1009_and_one_log_line(
    server: Daphne, token: str, mark: int
) -> None:
    async def scenario() -> tuple[int, int, bool]:
        # given: a bare socket that answers nothing, close frames included
        raw = await RawClient.open(server)
        await raw.auth(token)
        # when
        await raw.send_text("z" * OVERSIZED)
        opcode, payload = await raw.read_frame()
        while opcode != 0x8:
            opcode, payload = await raw.read_frame()
        (code,) = struct.unpack("!H", payload[:2])
        return opcode, code, await raw.closed_by_server()

    opcode, code, closed = asyncio.run(scenario())
    # then: a close frame, then the server ends the TCP by itself
    assert (opcode, code, closed) == (0x8, 1009, True)
    fields = log_line_of(server, mark)
    assert (fields["code"], fields["reason"]) == ("1009", "message_too_big")
    served_and_bounded(server, mark, token, connections=1)


# --- invalid UTF-8 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"type": "ping", "x": "\xff"}', id="invalid-byte"),
        pytest.param(b'{"type": "ping"}\xe2\x82', id="truncated-code-point"),
        pytest.param([b'{"type": "ping", "x": "\xe2', b'\x28\xa1"}'], id="across-fragments"),
    ],
)
def test_a_text_frame_that_is_not_utf8_is_closed_with_1007(
    server: Daphne, token: str, mark: int, payload: bytes | list[bytes]
) -> None:
    async def scenario() -> ConnectionClosed:
        # given
        ws = await ws_authed(server, token)
        # when: the bytes go out in a text frame, unchecked
        return await sent_then_closed(ws, payload, text=True)

    closed = asyncio.run(scenario())
    # then
    code, reason = close_of(closed)
    assert code == 1007, closed
    assert "UTF-8" in reason
    fields = log_line_of(server, mark)
    assert (fields["code"], fields["reason"]) == ("1007", "invalid_utf8")
    served_and_bounded(server, mark, token, connections=1)


def test_a_code_point_split_across_fragments_is_valid_utf8(server: Daphne, token: str) -> None:
    async def scenario() -> dict[str, object]:
        # given
        ws = await ws_authed(server, token)
        # when: "€" (e2 82 ac) split over two frames of one message
        await ws.send([b'{"type": "ping", "x": "\xe2\x82', b'\xac"}'], text=True)
        reply = await receive(ws)
        await ws.close()
        return reply

    # then
    assert asyncio.run(scenario()) == {"type": "pong"}


def test_an_unmasked_frame_is_closed_with_1002(server: Daphne, token: str, mark: int) -> None:
    async def scenario() -> tuple[int, int]:
        # given
        raw = await RawClient.open(server)
        await raw.auth(token)
        # when: a client frame without a mask (RFC 6455 requires one)
        raw.writer.write(b"\x81\x10" + b'{"type": "ping"}')
        opcode, payload = await raw.read_frame()
        while opcode != 0x8:
            opcode, payload = await raw.read_frame()
        (code,) = struct.unpack("!H", payload[:2])
        return opcode, code

    # then
    assert asyncio.run(scenario()) == (0x8, 1002)
    fields = log_line_of(server, mark)
    assert (fields["code"], fields["reason"]) == ("1002", "protocol_error")
    served_and_bounded(server, mark, token, connections=1)


# --- the other sockets --------------------------------------------------------------------------


def test_a_subscribed_socket_keeps_its_events_while_others_are_closed_for_faults(
    server: Daphne, bot: Bot, mark: int
) -> None:
    token = token_of(bot.user)

    async def scenario() -> tuple[list[int | None], list[int]]:
        # given: a socket subscribed to the bot
        watcher = await ws_authed(server, token)
        assert (await ws_subscribe(watcher, f"bot:{bot.pk}"))["type"] == "bot.snapshot"
        # when: three others are closed for protocol faults, and an event is published
        codes = []
        for message in ("x" * OVERSIZED, ["y" * FRAGMENT] * 4, b'"\xff"'):
            ws = await ws_authed(server, token)
            codes.append(close_of(await sent_then_closed(ws, message, text=True))[0])
        await asyncio.to_thread(publish, bot, 1)
        got = await received_until(watcher, lambda message: message["type"] == "bot.status")
        await watcher.close()
        return codes, seqs(got)

    codes, delivered = asyncio.run(scenario())
    # then
    assert codes == [1009, 1009, 1007]
    assert delivered == [1]
    served_and_bounded(server, mark, token, connections=4)


def test_the_application_limit_still_closes_a_text_over_64_kib_with_4009(
    server: Daphne, token: str, mark: int
) -> None:
    async def scenario() -> tuple[list[object], int | None]:
        ws = await ws_authed(server, token)
        await ws.send("x" * (64 * 1024 + 1))
        return await messages_then_close(ws)  # type: ignore[return-value]

    messages, code = asyncio.run(scenario())
    assert (messages, code) == ([], 4009)
    assert log_line_of(server, mark)["reason"] == "message_too_big"
    served_and_bounded(server, mark, token, connections=1)


# --- the command line ---------------------------------------------------------------------------


def test_the_procfile_runs_the_server_that_the_tests_run() -> None:
    # given
    web = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    # then: plain daphne would drop these connections (1006) instead of closing them
    assert f"-m {SERVER_MODULE} " in web
    assert re.search(rf"--websocket-max-message-size {MAX_MESSAGE_SIZE}\b", web)
