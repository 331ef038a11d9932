"""Publishing live events to WebSocket groups through the channel layer.

Groups are per user and per object (``user-<id>``, ``backtest-<id>``, ``sweep-<id>``). An event is
``{"type": "<kind>.<what>", "id": <object id>, "data": {...}}``; it reaches the consumers as the
channel-layer message ``{"type": "stream.event", "event": <event>}``.

Events are sent only after the surrounding transaction commits, so a client never hears of a state
that a rollback then takes back, and a client that re-reads on an event finds what it announced.
Publishing is best effort: the database is the truth, and a Redis hiccup must not fail the
backtest or the tick that was reporting. A failure is logged once per outage, not per event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from tradingbot.logconfig import context

logger = logging.getLogger(__name__)
CHANNEL_MESSAGE_TYPE = "stream.event"
_failing = False


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def object_group(kind: str, object_id: int) -> str:
    return f"{kind}-{object_id}"


def publish_after_commit(groups: Iterable[str], event: dict[str, Any]) -> None:
    """Send ``event`` to every group once the current transaction commits (now if none)."""
    targets = list(groups)
    transaction.on_commit(lambda: publish_now(targets, event))


def publish_now(groups: Iterable[str], event: dict[str, Any]) -> bool:
    """Send ``event`` to ``groups``; False (logged once per outage) when the layer is down."""
    global _failing
    layer = get_channel_layer()
    if layer is None:
        return False
    message = {"type": CHANNEL_MESSAGE_TYPE, "event": event}

    async def send_to_all() -> None:
        for group in groups:
            await layer.group_send(group, message)

    try:
        # One call for every group: outside an event loop, each async_to_sync call starts a
        # loop and a Redis connection of its own (tens of ms).
        async_to_sync(send_to_all)()
    except Exception as exc:
        if not _failing:
            _failing = True
            logger.warning(
                "events.publish_failed",
                extra=context(event_type=event.get("type"), error=type(exc).__name__),
            )
        return False
    if _failing:
        _failing = False
        logger.info("events.publish_recovered", extra=context(event_type=event.get("type")))
    return True
