"""The tick dispatcher: which bots are due, and sending their ticks to the workers.

Beat runs ``bots.tasks.dispatch_ticks_task`` every second; it enqueues the due bots' ticks by
task name (``tradingbot.tasks.enqueue``: a service does not import the tasks that import it) on
``settings.BOTS_QUEUE``, so a long backtest never delays one. A tick not started within
``TICK_EXPIRES_SECONDS`` is stale and dropped: the dispatcher sends a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from bots.models import Bot
from bots.services.lease import ACTIVE, lease_free
from tradingbot.tasks import enqueue

TICK_TASK = "bots.tasks.bot_tick_task"
TICKS_TASK = "bots.tasks.bot_ticks_task"
TICK_EXPIRES_SECONDS = 60


def send_tick(bot_id: int) -> None:
    """Enqueue one bot's tick."""
    enqueue(TICK_TASK, bot_id, queue=settings.BOTS_QUEUE, expires=TICK_EXPIRES_SECONDS)


def send_ticks(bot_ids: list[int]) -> None:
    """Enqueue the ticks of ``bot_ids`` as one batch (one bot: its own tick)."""
    if len(bot_ids) == 1:
        send_tick(bot_ids[0])
        return
    enqueue(TICKS_TASK, bot_ids, queue=settings.BOTS_QUEUE, expires=TICK_EXPIRES_SECONDS)


def bots_due(now: datetime | None = None) -> QuerySet[Bot]:
    """Active bots whose next tick is due and that no tick holds."""
    now = now or timezone.now()
    return Bot.objects.filter(status__in=ACTIVE, next_tick_at__lte=now).filter(lease_free(now))


def bots_dispatch(*, send: Callable[[list[int]], Any] = send_ticks, limit: int = 10_000) -> int:
    """Enqueue the ticks of the due bots through ``send``, in batches of ``BOT_TICK_BATCH`` bot
    ids. Each bot's ``next_tick_at`` is pushed ``BOT_REDISPATCH_SECONDS`` ahead first, so the
    next dispatch does not enqueue it again while its tick waits in the queue (and does if the
    message was lost). Returns how many bots it enqueued."""
    now = timezone.now()
    ids = list(bots_due(now).order_by("next_tick_at").values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    later = now + timedelta(seconds=settings.BOT_REDISPATCH_SECONDS)
    for start in range(0, len(ids), 500):
        Bot.objects.filter(pk__in=ids[start : start + 500]).update(next_tick_at=later)
    size = settings.BOT_TICK_BATCH
    for start in range(0, len(ids), size):
        send(ids[start : start + size])
    return len(ids)
