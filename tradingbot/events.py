"""Publishing live events to WebSocket groups through the channel layer.

Groups are per user and per object (``user-<id>``, ``bot-<id>``, ``backtest-<id>``,
``sweep-<id>``) and per market (``market_group``: candles). An event is ``{"type":
"<kind>.<what>", "id": <object id>, "channel": "<kind>:<id>", "owner": <user id>, "data":
{...}}`` (``object_event``); a market's events have no owner. It reaches the consumers as the
channel-layer message ``{"type": "stream.event", "group": <group>, "event": <event>}``, or, when
one batch sends several events to a group, as ``{"type": "stream.events", "group": <group>,
"events": [<event>, ...]}`` in order. The consumer checks ``owner`` on every event before it
passes one on, without ``owner``.

Events are sent only after the surrounding transaction commits, so a client never hears of a state
that a rollback then takes back, and a client that re-reads on an event finds what it announced.
Publishing is best effort: the database is the truth, and a Redis hiccup must not fail the
backtest or the tick that was reporting. A failure is logged once per outage, not per event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

from tradingbot import metrics
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)
CHANNEL_MESSAGE_TYPE = "stream.event"
CHANNEL_BATCH_TYPE = "stream.events"
PUBLISH_TIMEOUT_SECONDS = 5.0
_failing = False


class _PublishLoop:
    """One event loop per process, on a daemon thread, that every publish runs on.

    ``async_to_sync`` from plain sync code starts a loop per call, and the channel layer opens a
    Redis connection per loop: milliseconds per event, most of a bot tick's time. One long-lived
    loop keeps its connection. It is made again in a forked child (Celery's prefork pool), whose
    copy of the parent's thread does not run.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def run(self, work: Callable[[], Awaitable[None]]) -> None:
        future = asyncio.run_coroutine_threadsafe(_awaited(work), self._running_loop())
        future.result(timeout=PUBLISH_TIMEOUT_SECONDS)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="events", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


async def _awaited(work: Callable[[], Awaitable[None]]) -> None:
    await work()


_publisher = _PublishLoop()


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def object_group(kind: str, object_id: int) -> str:
    return f"{kind}-{object_id}"


def market_channel(kind: str, exchange: str, symbol: str, timeframe: str) -> str:
    return f"{kind}:{exchange}:{symbol}:{timeframe}"


def market_group(kind: str, exchange: str, symbol: str, timeframe: str) -> str:
    # Group names allow only ASCII letters, digits, "-", "_" and "."; a symbol has "/" and
    # maybe ":" (BTC/USDT:USDT), so it travels hex-encoded, which cannot collide.
    return f"{kind}-{exchange}-{symbol.encode().hex()}-{timeframe}"


def session_group(session_key: str) -> str:
    """The live connections of one browser session (a hash: group names are stored in Redis)."""
    return f"session-{hashlib.sha256(session_key.encode()).hexdigest()[:32]}"


def token_group(token_id: int) -> str:
    """The live connections authenticated by one API token."""
    return f"token-{token_id}"


def object_groups(kind: str, object_id: int, owner_id: int) -> list[str]:
    """Where an object's events go: its owner's group and its own."""
    return [user_group(owner_id), object_group(kind, object_id)]


def object_event(
    kind: str, what: str, *, object_id: int, owner_id: int, data: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "type": f"{kind}.{what}", "id": object_id, "channel": f"{kind}:{object_id}",
        "owner": owner_id, "data": data,
    }  # fmt: skip


def channel_message(group: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The channel-layer message carrying ``events`` to a group's consumers."""
    if len(events) == 1:
        return {"type": CHANNEL_MESSAGE_TYPE, "group": group, "event": events[0]}
    return {"type": CHANNEL_BATCH_TYPE, "group": group, "events": events}


def event_kind(event: Mapping[str, Any]) -> str:
    """The kind of channel an event belongs to: ``bot`` for ``bot.status``."""
    return str(event.get("type", "")).partition(".")[0] or "unknown"


def publish_after_commit(groups: Iterable[str], event: dict[str, Any]) -> None:
    """Send ``event`` to every group once the current transaction commits (now if none)."""
    publish_batch_after_commit([(list(groups), event)])


def publish_batch_after_commit(batch: list[tuple[list[str], dict[str, Any]]]) -> None:
    """Send several events, in order, in one go once the current transaction commits."""
    if batch:
        transaction.on_commit(lambda: publish_batch_now(batch))


def publish_now(groups: Iterable[str], event: dict[str, Any]) -> bool:
    """Send ``event`` to ``groups``; False (logged once per outage) when the layer is down."""
    return publish_batch_now([(list(groups), event)])


def revoke_connections_now(group: str) -> bool:
    """Close the live connections in ``group`` (their session or token has ended) with 4401."""
    layer = get_channel_layer()
    if layer is None:
        return False

    async def send() -> None:
        await layer.group_send(group, {"type": "connection.revoke"})

    try:
        _publisher.run(send)
    except Exception as exc:
        logger.warning("events.revoke_failed", extra=context(error=type(exc).__name__))
        return False
    return True


def publish_batch_now(batch: list[tuple[list[str], dict[str, Any]]]) -> bool:
    """Send each ``(groups, event)`` in order; False (logged once per outage) when it fails."""
    global _failing
    layer = get_channel_layer()
    if layer is None or not batch:
        return False

    # One channel message per group: a group that several events of the batch go to gets them
    # as one "stream.events" message, in order (a group send costs a few Redis round trips, and
    # a batch of ticks sends dozens of events to its users' groups). Groups are sent to
    # concurrently.
    per_group: dict[str, list[dict[str, Any]]] = {}
    for groups, event in batch:
        for group in groups:
            per_group.setdefault(group, []).append(event)

    async def send_all() -> None:
        await asyncio.gather(
            *(
                layer.group_send(group, channel_message(group, events))
                for group, events in per_group.items()
            )
        )

    first_type = batch[0][1].get("type")
    try:
        _publisher.run(send_all)
    except Exception as exc:
        if not _failing:
            _failing = True
            logger.warning(
                "events.publish_failed",
                extra=context(event_type=first_type, error=type(exc).__name__),
            )
        return False
    metrics.EVENTS_PUBLISHED.inc_each({"kind": event_kind(event)} for _, event in batch)
    if _failing:
        _failing = False
        logger.info("events.publish_recovered", extra=context(event_type=first_type))
    return True
