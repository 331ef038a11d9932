"""Writes and business operations of the bots app. Keyword-only, typed, transactional.

- ``lifecycle``: bots created, changed, started, stopped; the kill switch.
- ``dispatch``: the bots due for a tick, and sending their ticks (by task name).
- ``ticks``: the trading tick, top to bottom; ``batch``: many ticks at once, the bots that
  hold together. Its parts: ``lease`` (which tick holds a bot), ``orders`` (send, cancel,
  read back, reconcile, adopt), ``stopping`` (a stop carried out, the daily loss limit),
  ``failures`` (errors, backoff, recovery), ``outcomes`` (``TickResult``, the tick's event
  and log line).
- ``books``: orders, trades and positions. ``events``: the bot's log, its status changes, and
  the live updates a tick gathers (``BotUpdates``) and publishes once.
- ``markets``: a bot's exchange, clock and candles. ``housekeeping``: pruning old bot events.
- ``closing``: "close position now", the trader's market close of a bot's position.
- ``signals_in``: a signal posted to a bot's webhook, acted on at once under the tick lease;
  ``signal_access``: who may post one (the hashed token, the IP allow-list, the rate limit).
- ``equity``: the bots' and paper accounts' equity over time, and thinning it with age.
- ``demo``: the demo trader's bot.
"""

from bots.services.batch import bots_tick_batch
from bots.services.closing import bot_close_position
from bots.services.demo import demo_bot_seed
from bots.services.dispatch import bots_dispatch
from bots.services.equity import accounts_equity_record, equity_compact
from bots.services.housekeeping import bot_events_prune
from bots.services.lifecycle import (
    BotConfig,
    bot_create,
    bot_delete,
    bot_start,
    bot_stop,
    bot_update,
    bots_kill,
)
from bots.services.outcomes import TickResult
from bots.services.ticks import bot_tick

__all__ = [
    "BotConfig",
    "TickResult",
    "accounts_equity_record",
    "bot_close_position",
    "bot_create",
    "bot_delete",
    "bot_events_prune",
    "bot_start",
    "bot_stop",
    "bot_tick",
    "bot_update",
    "bots_dispatch",
    "bots_kill",
    "bots_tick_batch",
    "demo_bot_seed",
    "equity_compact",
]
