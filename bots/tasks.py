"""Celery tasks of the bots app: thin wrappers around the services.

Ticks go to ``settings.BOTS_QUEUE`` (``trading``), so a long backtest never delays one. A tick
message delivered twice, or a tick retried, is harmless: the tick claims its bot and decides at
most once per candle (see ``bots.services.ticks``).
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from bots import services


@shared_task(name="bots.tasks.bot_tick_task", ignore_result=True)
def bot_tick_task(bot_id: int) -> str:
    return services.bot_tick(bot_id=bot_id).outcome


@shared_task(name="bots.tasks.dispatch_ticks_task", ignore_result=True)
def dispatch_ticks_task() -> int:
    """Every second (beat): enqueue a tick for each running bot whose candle has closed."""
    return services.bots_dispatch(send=send_tick)


def send_tick(bot_id: int) -> None:
    # A tick not started within a minute is stale: the dispatcher sends a fresh one.
    bot_tick_task.apply_async((bot_id,), queue=settings.BOTS_QUEUE, expires=60)


@shared_task(name="bots.tasks.prune_bot_events_task", ignore_result=True)
def prune_bot_events_task() -> int:
    """Daily (beat): drop bot events older than BOT_EVENT_RETENTION_DAYS."""
    return services.bot_events_prune()
