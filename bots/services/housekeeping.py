"""Keeping the bots' tables bounded: a bot on 1m candles writes 1,440 tick events a day."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from bots.models import BotEvent
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)
DELETE_BATCH = 5000


def bot_events_prune(*, days: int | None = None) -> int:
    """Delete bot events older than ``days`` (default ``BOT_EVENT_RETENTION_DAYS``), in batches
    so that no single statement locks the table for long. Orders and trades are never pruned:
    they are the books."""
    keep = days if days is not None else settings.BOT_EVENT_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=keep)
    deleted = 0
    while True:
        batch = list(
            BotEvent.objects.filter(time__lt=cutoff).values_list("pk", flat=True)[:DELETE_BATCH]
        )
        if not batch:
            break
        deleted += BotEvent.objects.filter(pk__in=batch).delete()[0]
    if deleted:
        logger.info("bots.events_pruned", extra=context(deleted=deleted, days=keep))
    return deleted
