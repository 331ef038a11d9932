"""The smoke check's clients: JSON over HTTP (urllib) and the ``/ws/`` WebSocket rounds.

Plain clients of a deployment: no Django, no database. A broken expectation raises
``CheckFailed`` whose message becomes the check's row in the report.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

# Replies of the server; anything else on an authenticated connection is a live event about the
# user's own objects, which may arrive at any time and is passed over.
WS_REPLIES = frozenset({"auth.ok", "pong", "error"})
# What a WebSocket round may run into, besides a wrong answer: network, protocol, not JSON.
WS_TROUBLE = (OSError, TimeoutError, ValueError, WebSocketException)


class CheckFailed(Exception):
    """An expectation of a check was not met; the message is the row's detail."""


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


class HttpClient:
    """JSON over urllib against one base URL. Error statuses are returned, never raised; a server
    that cannot be reached raises ``CheckFailed`` naming the URL."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        url = f"{self.base_url}{path}"
        data = raw if raw is not None or payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - operator's URL
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return Reply(response.status, _decoded(response.read()))
        except urllib.error.HTTPError as error:
            return Reply(error.code, _decoded(error.read()))
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise CheckFailed(f"{method} {url}: cannot reach the server ({reason})") from None


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")[:200]


def describe(body: Any) -> str:
    """A short account of a response body: the error envelope's code and message if it is one."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return json.dumps(body)[:200] if not isinstance(body, str) else body[:200]


def expect(reply: Reply, status: int, what: str) -> Any:
    """The body of ``reply`` if it has ``status``; otherwise the check fails saying what came."""
    if reply.status != status:
        raise CheckFailed(f"{what}: expected {status}, got {reply.status} ({describe(reply.body)})")
    return reply.body


def envelope_code(body: Any) -> str:
    """The code of a well-formed error envelope ``{"error": {"code", "message", "details"}}``."""
    error = body.get("error") if isinstance(body, dict) else None
    if (
        not isinstance(error, dict)
        or set(body) != {"error"}
        or set(error) != {"code", "message", "details"}
        or not isinstance(error["code"], str)
        or not isinstance(error["message"], str)
        or not error["message"]
        or not isinstance(error["details"], dict)
    ):
        raise CheckFailed(f"not the documented error envelope: {describe(body)}")
    return str(error["code"])


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ws_url(base_url: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws/", "", ""))


# --- WebSocket ----------------------------------------------------------------------------------


async def websocket_rounds(url: str, token: str, *, rounds: int, timeout: float) -> str:
    """``rounds`` connections that authenticate, ping twice (JSON and bare) and close cleanly,
    then one dropped without a close frame and one more that must still be served."""
    for index in range(1, rounds + 1):
        await _ws_round(url, token, index, timeout)
    await _ws_drop(url, token, timeout)
    await _ws_round(url, token, rounds + 1, timeout)
    return (
        f"{rounds} connections: auth.ok, 2 pongs, clean close each; one abrupt drop, "
        "then served again"
    )


async def _ws_round(url: str, token: str, index: int, timeout: float) -> None:
    try:
        ws = await _ws_open(url, token, timeout)
        try:
            for ping in (json.dumps({"type": "ping"}), "ping"):
                await ws.send(ping)
                reply = await _ws_reply(ws, timeout)
                if reply.get("type") != "pong":
                    raise CheckFailed(f"connection {index}: {ping!r} answered {reply}")
        finally:
            await ws.close()
    except WS_TROUBLE as error:
        raise CheckFailed(f"connection {index}: {_ws_problem(error)}") from None
    if ws.close_code != 1000:
        raise CheckFailed(f"connection {index}: closed with {ws.close_code}, expected 1000")


async def _ws_drop(url: str, token: str, timeout: float) -> None:
    try:
        ws = await _ws_open(url, token, timeout)
    except WS_TROUBLE as error:
        raise CheckFailed(f"connection to drop: {_ws_problem(error)}") from None
    ws.transport.abort()


async def _ws_open(url: str, token: str, timeout: float) -> ClientConnection:
    ws = await connect(url, open_timeout=timeout, close_timeout=timeout, ping_interval=None)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    reply = await _ws_reply(ws, timeout)
    if reply.get("type") != "auth.ok":
        await ws.close()
        raise CheckFailed(f"auth answered {reply}")
    return ws


async def _ws_reply(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if isinstance(message, dict) and message.get("type") in WS_REPLIES:
                return message


def _ws_problem(error: BaseException) -> str:
    if isinstance(error, InvalidStatus):
        return f"handshake refused with HTTP {error.response.status_code}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return f"{type(error).__name__}: {error}"
