"""The tick lease: which tick holds a bot, so that two ticks of one bot never overlap.

A tick claims its bot with one conditional UPDATE that only one worker can win: the bot must be
active and its lease free (never taken, or lapsed: a worker killed mid-tick frees the bot after
``BOT_TICK_LEASE_SECONDS``). The claim stamps a new token; releasing clears the lease only where
that token still holds it, and saves the tick's bookkeeping in the same UPDATE. The single tick
claims one bot, the batched tick many under one token; the dispatcher sends ticks only for bots
whose lease is free.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from bots.models import Bot

ACTIVE = (Bot.Status.RUNNING, Bot.Status.STOPPING)  # the bots a tick works on


def lease_free(now: datetime) -> Q:
    """Bots that no tick holds at ``now``."""
    return Q(tick_lease_until__isnull=True) | Q(tick_lease_until__lt=now)


def no_lease() -> dict[str, Any]:
    """The fields of a bot that no tick holds."""
    return {"tick_lease_until": None, "tick_lease_token": ""}


def leases_claim(bot_ids: Collection[int]) -> tuple[str, int]:
    """Claim every active bot of ``bot_ids`` that no tick holds, under one new token: the
    token (the claimed bots carry it) and how many bots it claimed."""
    now = timezone.now()
    token = str(uuid.uuid4())
    claimed = (
        Bot.objects.filter(pk__in=bot_ids, status__in=ACTIVE)
        .filter(lease_free(now))
        .update(
            tick_lease_until=now + timedelta(seconds=settings.BOT_TICK_LEASE_SECONDS),
            tick_lease_token=token,
        )
    )
    return token, claimed


def lease_claim(bot_id: int) -> str | None:
    """Take the bot for one tick: the lease's token; None when the bot is not active or
    another tick holds it."""
    token, claimed = leases_claim([bot_id])
    return token if claimed else None


CLOSE_TOKEN_PREFIX = "close-"  # noqa: S105  # a lease held by a "close position now", not a tick


def lease_claim_for_close(bot_id: int) -> str | None:
    """Take the bot, in whatever status, for a "close position now": the lease's token (marked
    ``CLOSE_TOKEN_PREFIX``, so that a start waits for it); None while a tick holds the bot."""
    now = timezone.now()
    token = f"{CLOSE_TOKEN_PREFIX}{uuid.uuid4().hex[:30]}"
    claimed = (
        Bot.objects.filter(pk=bot_id)
        .filter(lease_free(now))
        .update(
            tick_lease_until=now + timedelta(seconds=settings.BOT_TICK_LEASE_SECONDS),
            tick_lease_token=token,
        )
    )
    return token if claimed else None


def closing_now(bot: Bot) -> bool:
    """A "close position now" holds the bot (its lease has not lapsed)."""
    return (
        bot.tick_lease_token.startswith(CLOSE_TOKEN_PREFIX)
        and bot.tick_lease_until is not None
        and bot.tick_lease_until > timezone.now()
    )


def leases_release(bot_ids: Collection[int], token: str, **fields: Any) -> None:
    """Free the bots that ``token`` still holds, and write ``fields`` (the tick's bookkeeping)
    in the same UPDATE."""
    Bot.objects.filter(pk__in=bot_ids, tick_lease_token=token).update(**no_lease(), **fields)


def lease_release(bot_id: int, token: str, **fields: Any) -> None:
    """Free the bot if ``token`` still holds it, writing ``fields`` (see ``leases_release``)."""
    leases_release([bot_id], token, **fields)
