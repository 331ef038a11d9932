"""Celery tasks of the bots app: thin wrappers around the services.

Ticks go to ``settings.BOTS_QUEUE`` (``trading``), so a long backtest never delays one. A tick
message delivered twice, or a tick retried, is harmless: the tick claims its bot and decides at
most once per candle (see ``bots.services.ticks``). The dispatcher (``bots.services.dispatch``)
sends the ticks by these tasks' names.
"""

from __future__ import annotations

from celery import shared_task

from bots import services


@shared_task(name="bots.tasks.bot_tick_task", ignore_result=True)
def bot_tick_task(bot_id: int) -> str:
    return services.bot_tick(bot_id=bot_id).outcome


@shared_task(name="bots.tasks.bot_ticks_task", ignore_result=True)
def bot_ticks_task(bot_ids: list[int]) -> dict[str, int]:
    """Ticks of several bots: a Celery message costs about as much as a tick, and bots that
    only hold are recorded together (``bots.services.batch``), so the dispatcher sends them in
    batches of ``BOT_TICK_BATCH``. A failing bot is recorded on that bot and the batch goes on."""
    return services.bots_tick_batch(bot_ids=bot_ids)


@shared_task(name="bots.tasks.dispatch_ticks_task", ignore_result=True)
def dispatch_ticks_task() -> int:
    """Every second (beat): enqueue the ticks of the running bots whose candle has closed."""
    return services.bots_dispatch()


@shared_task(name="bots.tasks.prune_bot_events_task", ignore_result=True)
def prune_bot_events_task() -> int:
    """Daily (beat): drop bot events older than BOT_EVENT_RETENTION_DAYS."""
    return services.bot_events_prune()


@shared_task(name="bots.tasks.record_account_equity_task", ignore_result=True)
def record_account_equity_task() -> int:
    """Every minute (beat): sample the paper accounts' equity (no exchange call)."""
    return services.accounts_equity_record()


@shared_task(name="bots.tasks.compact_equity_task", ignore_result=True)
def compact_equity_task() -> dict[str, int]:
    """Hourly (beat): thin the bots' and accounts' equity rows with age (idempotent)."""
    return services.equity_compact()
