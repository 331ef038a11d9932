"""What a tick does when it fails, and when the exchange answers again.

- The replay ran out of candles: the bot stops.
- A transient exchange error (network, rate limit, exchange down): the bot stays running and
  its next tick is put off with exponential backoff; one event per incident, not one per try,
  and one more when the exchange answers again. After ``BOT_DEGRADED_AFTER_FAILURES`` failed
  ticks in a row the bot is *degraded* (``degraded_since``, with the last failure as the
  reason): shown as such instead of "running" on every page, the API and the live updates,
  until a tick succeeds again.
- Any other exchange error (an authentication error, say): the bot goes to ``error``.
- A bot being stopped is never put off: its next tick (which carries the stop out whatever the
  exchange answers) is due at once.
- An exception of the strategy or of the tick itself: the bot goes to ``error``, with the
  traceback in the event; other bots are not touched.
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Case, F, Value, When
from django.utils import timezone

from bots.models import Bot, BotEvent
from bots.services.events import BotUpdates, bot_event, bot_set_status
from bots.services.lease import ACTIVE
from bots.services.outcomes import TickResult
from markets.exchanges.errors import ExchangeAuthError, ExchangeError
from markets.exchanges.prices import ReplayEndedError
from tradingbot.logconfig import context

logger = logging.getLogger("bots.tick")


def replay_ended(bot: Bot, error: ReplayEndedError, updates: BotUpdates) -> TickResult:
    bot_set_status(bot, Bot.Status.STOPPED, expected=ACTIVE, updates=updates)
    bot_event(bot, "replay_ended", f"Stopped by the system because {error.message}.",
              updates=updates)  # fmt: skip
    return TickResult(bot.pk, "stopped")


def exchange_failure(bot: Bot, error: ExchangeError, updates: BotUpdates) -> TickResult:
    if error.transient:
        if bot.error_streak == 0:  # one event per incident, not one per try
            bot_event(
                bot, "exchange_unavailable", f"{error.message}; retrying with backoff.",
                level=BotEvent.Level.WARNING, updates=updates,
            )  # fmt: skip
        _degrade(bot, str(error.message), updates)
        return TickResult(bot.pk, "retry", quiet=bot.error_streak > 0)
    message = str(error.message)
    if isinstance(error, ExchangeAuthError):
        message = f"{error.message}: check the exchange account's API key"
    # Only a running bot fails into ``error``: a stopping one is stopped by its next tick.
    if bot_set_status(bot, Bot.Status.ERROR, expected=(Bot.Status.RUNNING,), last_error=message,
                      degraded_since=None, degraded_reason="", updates=updates):  # fmt: skip
        bot_event(bot, error.code, message, level=BotEvent.Level.ERROR, updates=updates)
    return TickResult(bot.pk, "error")


def _degrade(bot: Bot, reason: str, updates: BotUpdates) -> None:
    """The ``BOT_DEGRADED_AFTER_FAILURES``-th failed tick in a row makes a running bot degraded
    (one event, one status update); later failures only keep the reason current."""
    if bot.error_streak + 1 < settings.BOT_DEGRADED_AFTER_FAILURES:
        return
    running = Bot.objects.filter(pk=bot.pk, status=Bot.Status.RUNNING)
    if bot.degraded_since is not None:
        if reason != bot.degraded_reason:
            running.update(degraded_reason=reason)
        return
    now = timezone.now()
    if not running.filter(degraded_since__isnull=True).update(
        degraded_since=now, degraded_reason=reason
    ):
        return
    bot.degraded_since, bot.degraded_reason = now, reason
    bot_event(
        bot, "degraded",
        f"Degraded: {bot.error_streak + 1} ticks in a row failed ({reason}); retrying with "
        "backoff.", level=BotEvent.Level.WARNING, data={"reason": reason}, updates=updates,
    )  # fmt: skip
    updates.status(bot)


def retry_fields(bot: Bot, error: ExchangeError) -> dict[str, Any]:
    """The bot's bookkeeping after a failed tick: a transient failure puts the next tick off,
    twice as long each time, up to ``BOT_MAX_BACKOFF_SECONDS``; a bot being stopped is due at
    once (its stop does not wait for the exchange)."""
    now = timezone.now()
    later: Any = F("next_tick_at")
    fields: dict[str, Any] = {}
    if error.transient:
        delay = min(2 ** (bot.error_streak + 1), settings.BOT_MAX_BACKOFF_SECONDS)
        later = Value(now + timedelta(seconds=delay))
        fields["error_streak"] = bot.error_streak + 1
    due = Case(When(status=Bot.Status.STOPPING, then=Value(now)), default=later)
    return fields | {"next_tick_at": due}


def recovered_fields(bot: Bot, updates: BotUpdates) -> dict[str, Any]:
    """The bot's bookkeeping after a tick that succeeded: the end of an incident, if there was
    one, is recorded, the backoff reset and a degraded bot healthy again."""
    if not bot.error_streak and bot.degraded_since is None:
        return {}
    was_degraded = bot.degraded_since is not None
    bot.degraded_since, bot.degraded_reason = None, ""
    healthy = " (no longer degraded)" if was_degraded else ""
    message = f"The exchange answers again; trading resumed{healthy}."
    bot_event(bot, "exchange_recovered", message, updates=updates)
    if was_degraded:
        updates.status(bot)
    return {"error_streak": 0, "degraded_since": None, "degraded_reason": ""}


def crash(bot: Bot, error: Exception, updates: BotUpdates) -> TickResult:
    """A bug (in a strategy or here): the bot stops in ``error``; other bots are not touched."""
    logger.error(
        "bot.tick_failed",
        exc_info=error,
        extra=context(bot_id=bot.pk, symbol=bot.symbol, action="error",
                      error=type(error).__name__),
    )  # fmt: skip
    message = f"{type(error).__name__}: {error}"
    bot_set_status(bot, Bot.Status.ERROR, expected=ACTIVE, last_error=message, updates=updates)
    bot_event(
        bot, "tick_failed", message, level=BotEvent.Level.ERROR,
        data={"traceback": traceback.format_exc(limit=20)[-4000:]}, updates=updates,
    )  # fmt: skip
    return TickResult(bot.pk, "error")
