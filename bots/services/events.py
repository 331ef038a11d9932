"""How a bot reports: its event log (``BotEvent``), status changes, and live updates.

Updates go to the groups ``user-<id>`` and ``bot-<id>`` through the one publishing helper,
after the surrounding transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.utils import timezone

from bots.events import event_data, status_data
from bots.models import Bot, BotEvent
from tradingbot.events import object_event, object_groups, publish_batch_after_commit
from tradingbot.logconfig import context

logger = logging.getLogger("bots.bot")
Batch = list[tuple[list[str], dict[str, Any]]]
_collected: ContextVar[Batch | None] = ContextVar("bot_updates", default=None)


@contextmanager
def updates_sent_together() -> Iterator[None]:
    """Hold the updates published inside the block and send them in one go at its end (after
    commit): a tick's four or five updates then cost one trip to the channel layer, not five."""
    batch: Batch = []
    token = _collected.set(batch)
    try:
        yield
    finally:
        _collected.reset(token)
        publish_batch_after_commit(batch)


def bot_publish(bot: Bot, event_type: str, data: Mapping[str, Any]) -> None:
    what = event_type.removeprefix("bot.")
    event = object_event("bot", what, object_id=bot.pk, owner_id=bot.user_id, data=data)
    message = (object_groups("bot", bot.pk, bot.user_id), event)
    batch = _collected.get()
    if batch is not None:
        batch.append(message)
    else:
        publish_batch_after_commit([message])


def bot_event(
    bot: Bot,
    kind: str,
    message: str,
    *,
    level: str = BotEvent.Level.INFO,
    data: dict[str, Any] | None = None,
) -> BotEvent:
    """Write one line of the bot's own log and announce it."""
    event = BotEvent.objects.create(bot=bot, kind=kind, message=message, level=level,
                                    data=data or {})  # fmt: skip
    bot_publish(bot, "bot.event", event_data(event))
    return event


def bot_set_status(bot: Bot, status: str, *, expected: tuple[str, ...], **fields: Any) -> bool:
    """Move the bot to ``status`` if it is in one of ``expected`` (a conditional UPDATE, so a
    concurrent change wins cleanly); log and announce the change. False when it was not."""
    changed = Bot.objects.filter(pk=bot.pk, status__in=expected).update(
        status=status, updated_at=timezone.now(), **fields
    )
    if not changed:
        return False
    previous = bot.status
    bot.status = status
    for name, value in fields.items():
        setattr(bot, name, value)
    logger.info(
        "bot.status",
        extra=context(bot_id=bot.pk, symbol=bot.symbol, action=status, previous=previous),
    )
    bot_publish(bot, "bot.status", status_data(bot))
    return True
