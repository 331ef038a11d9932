"""How a bot reports: its event log (``BotEvent``), its status changes, and the live updates
that announce them.

A tick (or a batch of ticks) gathers its updates, in the order things happen, in one
``BotUpdates`` that it passes along and publishes once when it is done: after the surrounding
transaction commits, to the groups ``user-<id>`` and ``bot-<id>``, in one trip to the channel
layer. A write outside a tick (a start, a stop, the kill switch) is announced on its own, also
after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone

from bots.events import (
    event_data,
    order_data,
    position_data,
    status_data,
    tick_data,
    trade_data,
)
from bots.models import Bot, BotEvent, Order, Position, Trade
from bots.services import notices
from markets.events import CandleData
from tradingbot.events import object_event, object_groups, publish_batch_after_commit
from tradingbot.logconfig import context

logger = logging.getLogger("bots.bot")


class BotUpdates:
    """The live updates of what happened to bots, in the order it happened, published once.

    Each payload is built when it is recorded, from the row as it is then, as the event that
    announces that moment should say; a later change is a later update.
    """

    def __init__(self) -> None:
        self._messages: list[tuple[list[str], dict[str, Any]]] = []

    def candle(self, bot: Bot, candle: CandleData) -> None:
        """The candle the bot's tick acted on."""
        self._add(bot, "candle", candle)

    def tick(
        self, bot: Bot, *, at: datetime, next_at: datetime | None, candle_ms: int | None
    ) -> None:
        """The tick ran at ``at``; the bot is due again at ``next_at``."""
        data = tick_data(last_tick_at=at, next_tick_at=next_at, last_candle_ms=candle_ms)
        self._add(bot, "tick", data)

    def order(self, bot: Bot, order: Order) -> None:
        self._add(bot, "order", order_data(order))

    def trade(self, bot: Bot, trade: Trade) -> None:
        self._add(bot, "trade", trade_data(trade))

    def position(self, bot: Bot, position: Position) -> None:
        self._add(bot, "position", position_data(position))

    def event(self, bot: Bot, event: BotEvent) -> None:
        self._add(bot, "event", event_data(event))

    def status(self, bot: Bot) -> None:
        self._add(bot, "status", status_data(bot))

    def publish(self) -> None:
        """Send the updates gathered so far, in order, once the current transaction commits
        (at once outside a transaction), and start gathering afresh."""
        messages, self._messages = self._messages, []
        publish_batch_after_commit(messages)

    def _add(self, bot: Bot, what: str, data: Mapping[str, Any]) -> None:
        event = object_event("bot", what, object_id=bot.pk, owner_id=bot.user_id, data=data)
        self._messages.append((object_groups("bot", bot.pk, bot.user_id), event))


def bot_event(
    bot: Bot,
    kind: str,
    message: str,
    *,
    level: str = BotEvent.Level.INFO,
    data: dict[str, Any] | None = None,
    updates: BotUpdates | None = None,
) -> BotEvent:
    """Write one line of the bot's own log, and announce it with ``updates`` (or, without
    them, on its own after commit)."""
    event = BotEvent.objects.create(bot=bot, kind=kind, message=message, level=level,
                                    data=data or {})  # fmt: skip
    notices.event_recorded(bot, event)
    _announce(updates, lambda gathered: gathered.event(bot, event))
    return event


def bot_set_status(
    bot: Bot, status: str, *, expected: tuple[str, ...], updates: BotUpdates | None = None,
    **fields: Any,
) -> bool:  # fmt: skip
    """Move the bot to ``status`` if it is in one of ``expected`` (a conditional UPDATE, so a
    concurrent change wins cleanly), writing ``fields`` with it; log the change and announce it
    with ``updates`` (or, without them, on its own after commit). False when it was not in
    ``expected``."""
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
    _announce(updates, lambda gathered: gathered.status(bot))
    return True


def _announce(updates: BotUpdates | None, record: Callable[[BotUpdates], None]) -> None:
    """Record an update in ``updates``; without them, publish it on its own (after commit)."""
    if updates is not None:
        record(updates)
        return
    alone = BotUpdates()
    record(alone)
    alone.publish()
