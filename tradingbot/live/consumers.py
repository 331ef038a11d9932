"""The live-updates WebSocket (``/ws/``). The protocol is in ``docs/websocket.md``.

A connection authenticates by its session cookie, or by ``{"type": "auth", "token": ...}`` as
its first message within ``AUTH_TIMEOUT_SECONDS``; it then joins its user's group and may
subscribe to the user's bots, backtests and sweeps, and to any market's candles.

Everything tied to a connection ends with it: ``disconnect`` leaves every group it joined and
cancels the authentication timer, and writes the connection's only log line. Channels stops
dispatching after a disconnect, so nothing can call ``receive`` on a closed socket (the
predecessor's endless error loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth.models import AbstractBaseUser

from tradingbot import metrics
from tradingbot.events import session_group, token_group, user_group
from tradingbot.live import protocol
from tradingbot.live.channels import token_holder
from tradingbot.live.protocol import (
    Auth,
    Channel,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
)
from tradingbot.live.subscriptions import subscription_snapshot
from tradingbot.logconfig import context

logger = logging.getLogger("tradingbot.live")
# Reasons the server closed a connection for a fault (logged as a warning; the rest as info).
FAULTS = frozenset(
    ("unauthenticated", "auth_failed", "too_many_bad_messages", "message_too_big",
     "layer_unavailable", *protocol.PROTOCOL_CLOSE_REASONS.values())
)  # fmt: skip
# Channel-layer messages whose handlers touch no database.
LAYER_MESSAGES = frozenset(("stream.event", "stream.events", "connection.revoke"))


class LiveConsumer(AsyncWebsocketConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every message, a hop to the
        # database thread; an event fanned out to every socket would pay it once per socket
        # (bench/ws_fanout.py, 1,000 clients: 2.2x the CPU of a delivery). Events need no database.
        if message["type"] in LAYER_MESSAGES:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        metrics.WS_CONNECTIONS.opened()
        self.conn_id = uuid.uuid4().hex[:8]
        self.opened = time.monotonic()
        self.user: AbstractBaseUser | None = None
        self.joined: set[str] = set()
        self.subscriptions: dict[str, Channel] = {}
        self.bad = protocol.BadMessageCounter()
        self.received = 0
        self.sent = 0
        self.close_reason = ""
        self.close_code: int | None = None
        self.auth_timer: asyncio.Task[None] | None = None
        await self.accept()
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            await self._authenticated(user, session_group(self.scope["session"].session_key))
        else:
            self.auth_timer = asyncio.create_task(self._close_unless_authenticated())

    async def disconnect(self, code: int) -> None:
        metrics.WS_CONNECTIONS.closed()
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        left_all = await self._leave_all()
        reason = (
            self.close_reason
            or protocol.PROTOCOL_CLOSE_REASONS.get(code, "")
            or ("" if left_all else "layer_unavailable")
        )
        log = logger.warning if reason in FAULTS else logger.info
        log(
            "ws.closed",
            extra=context(
                conn_id=self.conn_id, user_id=self.user.pk if self.user else None,
                code=self.close_code or code,
                reason=reason, seconds=round(time.monotonic() - self.opened, 1),
                received=self.received, sent=self.sent, bad=self.bad.total,
                subscriptions=len(self.subscriptions),
            ),
        )  # fmt: skip

    # --- from the client ----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.close_reason:
            return
        self.received += 1
        if text_data is None:
            if self.user is None:
                await self._refuse("unauthenticated", "authenticate first")
            else:
                await self._bad("invalid_message", "binary frames are not accepted; send JSON text")
            return
        if len(text_data) > protocol.MAX_TEXT_BYTES // 4 and (
            len(text_data.encode()) > protocol.MAX_TEXT_BYTES
        ):
            await self._close(protocol.CLOSE_MESSAGE_TOO_BIG, "message_too_big")
            return
        try:
            message = protocol.message_parse(text_data)
        except ProtocolError as exc:
            if self.user is None:
                await self._refuse("unauthenticated", "authenticate first")
            else:
                await self._bad(exc.code, str(exc), channel=exc.channel)
            return
        await self._handle(message)

    async def _handle(self, message: protocol.ClientMessage) -> None:
        if isinstance(message, Auth):
            await self._auth(message.token)
        elif self.user is None:
            await self._refuse("unauthenticated", "authenticate first")
        elif isinstance(message, Ping):
            await self._send(protocol.pong())
        elif isinstance(message, Subscribe):
            await self._subscribe(message.channel)
        elif isinstance(message, Unsubscribe):
            await self._unsubscribe(message.channel)

    async def _auth(self, key: str) -> None:
        holder = await database_sync_to_async(token_holder)(key)
        if self.user is not None:
            if holder is None or holder[0].pk != self.user.pk:
                await self._bad("auth_failed", "this connection is already another user's")
            else:
                await self._send({"type": "auth.ok", "user": self.user.pk})
            return
        if holder is None:
            await self._refuse("auth_failed", "invalid or expired token")
            return
        user, token_id = holder
        await self._authenticated(user, token_group(token_id))

    async def _subscribe(self, channel: Channel) -> None:
        if channel.name not in self.subscriptions and (
            len(self.subscriptions) >= protocol.MAX_SUBSCRIPTIONS
        ):
            await self._bad("too_many_subscriptions",
                            f"at most {protocol.MAX_SUBSCRIPTIONS} channels per connection",
                            channel=channel.name)  # fmt: skip
            return
        # Join before reading the snapshot: an update made after the read still arrives.
        if not await self._join(channel.group):
            return
        assert self.user is not None
        try:
            snapshot = await database_sync_to_async(subscription_snapshot)(
                user=self.user, channel=channel
            )
        except ProtocolError as exc:
            if channel.name not in self.subscriptions:
                await self._leave(channel.group)
            await self._bad(exc.code, str(exc), channel=channel.name)
            return
        self.subscriptions[channel.name] = channel
        await self._send(snapshot)

    async def _unsubscribe(self, channel: Channel) -> None:
        if self.subscriptions.pop(channel.name, None) is not None:
            await self._leave(channel.group)
        await self._send({"type": "unsubscribed", "channel": channel.name})

    # --- from the channel layer ---------------------------------------------------------------

    async def stream_event(self, message: dict[str, Any]) -> None:
        await self._deliver(message.get("group", ""), [message["event"]])

    async def stream_events(self, message: dict[str, Any]) -> None:
        await self._deliver(message.get("group", ""), message["events"])

    async def _deliver(self, group: str, events: list[dict[str, Any]]) -> None:
        if self.user is None or self.close_reason:
            return
        subscribed = set(self.subscriptions)
        own_group = user_group(self.user.pk)
        for event in events:
            admitted = protocol.admits(
                event, group=group, user_id=self.user.pk, own_group=own_group, subscribed=subscribed
            )
            if admitted:
                await self._send(protocol.client_view(event))

    async def connection_revoke(self, message: dict[str, Any]) -> None:
        await self._refuse("session_ended", "signed out", reason="signed_out")

    # --- helpers ------------------------------------------------------------------------------

    async def _authenticated(self, user: AbstractBaseUser, credential_group: str) -> None:
        """Join the user's group, and the group of the session or token it came with (so
        that logging out or revoking the token closes it)."""
        self.user = user
        if self.auth_timer is not None:
            self.auth_timer.cancel()
            self.auth_timer = None
        if await self._join(credential_group) and await self._join(user_group(user.pk)):
            await self._send({"type": "auth.ok", "user": user.pk})

    async def _close_unless_authenticated(self) -> None:
        await asyncio.sleep(protocol.AUTH_TIMEOUT_SECONDS)
        if self.user is None and not self.close_reason:
            seconds = f"{protocol.AUTH_TIMEOUT_SECONDS:g}"
            await self._refuse(
                "unauthenticated", f"no authentication within {seconds} s", reason="auth_timeout"
            )

    async def _refuse(self, code: str, message: str, *, reason: str = "") -> None:
        await self._send(protocol.error(code, message))
        await self._close(protocol.CLOSE_UNAUTHENTICATED, reason or code)

    async def _bad(self, code: str, message: str, *, channel: str | None = None) -> None:
        await self._send(protocol.error(code, message, channel=channel))
        if self.bad.add():
            await self._close(protocol.CLOSE_TOO_MANY_BAD_MESSAGES, "too_many_bad_messages")

    async def _join(self, group: str) -> bool:
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except Exception:  # Redis unreachable: this connection cannot be served
            await self._send(protocol.error("unavailable", "live updates are unavailable"))
            await self._close(protocol.CLOSE_UNAVAILABLE, "layer_unavailable")
            return False
        self.joined.add(group)
        return True

    async def _leave(self, group: str) -> None:
        self.joined.discard(group)
        # Redis unreachable: the layer forgets the membership in this process all the same, so
        # no event reaches this connection (at worst the process stays subscribed for nothing).
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _leave_all(self) -> bool:
        groups, self.joined = self.joined, set()
        try:
            for group in groups:
                await self.channel_layer.group_discard(group, self.channel_name)
        except Exception:
            return False
        return True

    async def _close(self, code: int, reason: str) -> None:
        if not self.close_reason:
            self.close_reason, self.close_code = reason, code
            await self.close(code=code)

    async def _send(self, payload: Any) -> None:
        if self.close_reason:
            return
        self.sent += 1
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))
