"""Old bot events are pruned; the books (orders, trades) are not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bots.models import BotEvent
from bots.services import bot_events_prune
from bots.services.events import bot_event
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import paper_account, replay_bot, store_candles


@pytest.mark.django_db
def test_it_deletes_events_older_than_the_retention_only(user: Any, settings: Any) -> None:
    settings.BOT_EVENT_RETENTION_DAYS = 30
    strategy_catalogue_sync()
    rows = store_candles(0, 50)
    bot = replay_bot(user, paper_account(user), start_ms=rows[0].open_time).bot
    old = [bot_event(bot, "tick", f"old {n}") for n in range(3)]
    recent = bot_event(bot, "tick", "recent")
    BotEvent.objects.filter(pk__in=[e.pk for e in old]).update(
        time=timezone.now() - timedelta(days=31)
    )
    BotEvent.objects.filter(pk=recent.pk).update(time=timezone.now() - timedelta(days=29))

    assert bot_events_prune() == 3
    assert list(BotEvent.objects.values_list("message", flat=True)) == ["recent"]
    assert bot_events_prune() == 0
