"""What a tick does when it fails, and when the exchange answers again.

- The replay ran out of candles: the bot stops.
- A transient exchange error (network, rate limit, exchange down): the bot stays running and
  its next tick is put off with exponential backoff; one event per incident, not one per try,
  and one more when the exchange answers again.
- Any other exchange error (an authentication error, say): the bot goes to ``error``.
- An exception of the strategy or of the tick itself: the bot goes to ``error``, with the
  traceback in the event; other bots are not touched.
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta
from typing import Any

from django.conf import settings
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
    bot_event(bot, "replay_ended", f"Stopped: {error.message}.", updates=updates)
    return TickResult(bot.pk, "stopped")


def exchange_failure(bot: Bot, error: ExchangeError, updates: BotUpdates) -> TickResult:
    if error.transient:
        if bot.error_streak == 0:  # one event per incident, not one per try
            bot_event(
                bot, "exchange_unavailable", f"{error.message}; retrying with backoff.",
                level=BotEvent.Level.WARNING, updates=updates,
            )  # fmt: skip
        return TickResult(bot.pk, "retry", quiet=bot.error_streak > 0)
    message = str(error.message)
    if isinstance(error, ExchangeAuthError):
        message = f"{error.message}: check the exchange account's API key"
    bot_set_status(bot, Bot.Status.ERROR, expected=ACTIVE, last_error=message, updates=updates)
    bot_event(bot, error.code, message, level=BotEvent.Level.ERROR, updates=updates)
    return TickResult(bot.pk, "error")


def retry_fields(bot: Bot, error: ExchangeError) -> dict[str, Any]:
    """The bot's bookkeeping after a failed tick: a transient failure puts the next tick off,
    twice as long each time, up to ``BOT_MAX_BACKOFF_SECONDS``."""
    if not error.transient:
        return {}
    delay = min(2 ** (bot.error_streak + 1), settings.BOT_MAX_BACKOFF_SECONDS)
    return {"error_streak": bot.error_streak + 1,
            "next_tick_at": timezone.now() + timedelta(seconds=delay)}  # fmt: skip


def recovered_fields(bot: Bot, updates: BotUpdates) -> dict[str, Any]:
    """The bot's bookkeeping after a tick that succeeded: the end of an incident, if there was
    one, is recorded and the backoff reset."""
    if not bot.error_streak:
        return {}
    bot_event(bot, "exchange_recovered", "The exchange answers again; trading resumed.",
              updates=updates)  # fmt: skip
    return {"error_streak": 0}


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
