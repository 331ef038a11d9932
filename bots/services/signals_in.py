"""Signals in: a bot acts on an outside signal (a TradingView alert, a script) posted to its
webhook, ``POST /api/signals/<token>`` (who may post: ``signal_access``).

The body is ``{"action": ..., "id": ...}``: the action sets the position the bot wants, its
target (spot: buy/long +1, sell/close/flat 0, short refused; a perp: buy/long +1, short -1,
sell/close/flat 0: ``sell`` only closes a long, it never opens a short). A ``ticker`` key, when
present, must name the bot's market (``BTCUSDT``, ``BITGET:BTCUSDT``, ``BTCUSDT.P`` for
``BTC/USDT`` and ``BTC/USDT:USDT``), so an alert sent to the wrong bot trades nothing; any other
key (``price``, ...) is ignored: the order is a market order at the exchange's price.

**Acting at once, in the request.** The signal is acted on inside the request, under the bot's
tick lease, as "close position now" is (``closing``): the order goes out within the request,
not a candle (or a queue) later, and the answer says what happened (traded, held, skipped,
rejected). While a tick holds the bot the request waits a moment for it (409 ``bot_busy``
after 3 s). Under the lease it does what a tick does, on the exchange's prices now: reconcile
the books, check the daily loss limit, decide with the pure decision (``decide`` /
``decide_perp``: sizing, ``max_position``, minimums, perp leverage and liquidation buffer)
and carry it out through the crash-safe order pipeline (``orders``), then place the entry's
stop-loss / take-profit (``protect_entry``). A signal is a NEW signal: it is not held back by
an earlier stop-loss exit (``Bot.risk_exit_target``).

**Exactly once.** The signal is written first (``Signal``: one row per bot and sender's id), and
every order it sends carries that row in its client order id (``order_ids.signal_stamp``). A
repeat of an id that was acted on answers the first outcome and trades nothing. A repeat of
one left ``received`` (the process died, the exchange was unreachable) is acted on again: the
reconcile first books whatever the first attempt sent, and an order it had written but not
sent goes out under the same id, so it can never be sent twice.

**With the strategy.** A bot of the built-in ``signals`` strategy trades on signals only: its
tick's target is the last signal's (``Bot.signal_target``; flat until one arrives), so the
tick keeps (and protects) what the signal opened. A bot of another strategy whose owner made
it a token acts on a signal at once too, but its strategy still decides on every candle: the
next tick may undo the signal's position if the strategy wants otherwise.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from bots.decisions import Decision, decide
from bots.models import Bot, Order, Position, Signal
from bots.order_ids import bot_order_prefix, signal_stamp
from bots.perp_decisions import decide_perp
from bots.services.books import position_mark, position_of
from bots.services.events import BotUpdates, bot_event
from bots.services.lease import lease_claim, lease_release
from bots.services.markets import BotMarket, ticker_price
from bots.services.orders import orders_execute, orders_reconcile
from bots.services.perp_sync import perp_position_sync
from bots.services.perp_ticks import perp_execute
from bots.services.protection import protect_entry
from bots.services.signal_access import signal_bot, signal_ip_check, signal_rate_check
from bots.services.stopping import daily_loss_hit, stop_finish
from bots.services.ticks import TickState, opened_position
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger("bots.bot")

CLAIM_TRIES, CLAIM_PAUSE_SECONDS = 30, 0.1  # a tick in progress: wait up to 3 s for it
SPOT_TARGETS = {"buy": 1, "long": 1, "sell": 0, "close": 0, "flat": 0}
PERP_TARGETS = SPOT_TARGETS | {"short": -1}
_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: it goes into logs and ids


@dataclass(frozen=True)
class SignalReceipt:
    """The signal as stored, and whether this request was a repeat of an id acted on."""

    signal: Signal
    duplicate: bool


def signal_receive(
    *, token: str, body: Any, ip: str | None, clock: Callable[[], float] = time.time
) -> SignalReceipt:
    """Act on a signal posted to a bot's webhook (see the module docstring). 404 for a token
    of no bot, 403 ``ip_not_allowed``, 429 ``rate_limited``, 400 for a bad body
    (``validation_error``, ``wrong_symbol``, ``short_on_spot``), 409 ``bot_not_running`` /
    ``bot_busy``; the exchange's errors (unreachable: 503) as they come, the signal left
    ``received`` so that sending it again acts on it."""
    bot = signal_bot(token)
    signal_ip_check(bot, ip)
    signal_rate_check(bot)
    action, signal_id = signal_parse(bot, body)
    if bot.status != Bot.Status.RUNNING:
        raise AppError("bot_not_running", f"The bot is {bot.status}; start it first.", 409)
    signal, fresh = _record(bot, action, signal_id)
    if not fresh and signal.outcome != Signal.Outcome.RECEIVED:
        return SignalReceipt(signal, duplicate=True)
    lease = _claim(bot)
    updates = BotUpdates()
    try:
        signal.refresh_from_db()
        if signal.outcome != Signal.Outcome.RECEIVED:  # a repeat acted on it meanwhile
            return SignalReceipt(signal, duplicate=True)
        bot.refresh_from_db()
        _act(bot, signal, BotMarket.of(bot, clock=clock), updates)
    finally:
        lease_release(bot.pk, lease)
        updates.publish()
    return SignalReceipt(signal, duplicate=False)


# --- the body ----------------------------------------------------------------------------------


def signal_parse(bot: Bot, body: Any) -> tuple[str, str]:
    """The action and the sender's id of a signal's body; 400 for anything else."""
    if not isinstance(body, dict):
        raise _invalid("body", "The body must be a JSON object.")
    action = body.get("action")
    if not isinstance(action, str) or action.strip().lower() not in PERP_TARGETS:
        choices = ", ".join(sorted(PERP_TARGETS))
        raise _invalid("action", f"The action must be one of {choices}.")
    action = action.strip().lower()
    if action not in (PERP_TARGETS if bot.is_perp else SPOT_TARGETS):
        raise AppError("short_on_spot", "A spot bot cannot go short; send sell or flat.", 400,
                       details={"action": ["short needs a perpetual swap bot"]})  # fmt: skip
    signal_id = body.get("id")
    if isinstance(signal_id, int) and not isinstance(signal_id, bool):
        signal_id = str(signal_id)
    if not isinstance(signal_id, str) or not _ID.match(signal_id):
        raise _invalid("id", "The id must be a string of printable characters without spaces.")
    if len(signal_id) > Signal.ID_MAX_LENGTH:
        raise _invalid("id", f"The id must be at most {Signal.ID_MAX_LENGTH} characters.")
    _check_ticker(bot, body.get("ticker"))
    return action, signal_id


def _invalid(field: str, message: str) -> AppError:
    return AppError("validation_error", message, 400, details={field: [message]})


def _check_ticker(bot: Bot, ticker: Any) -> None:
    """TradingView's ``{{ticker}}`` (``BTCUSDT``, ``BTCUSDT.P``, maybe ``BITGET:BTCUSDT``) must
    be the bot's market."""
    if ticker is None:
        return
    wanted = re.sub(r"[^A-Z0-9]", "", bot.symbol.split(":")[0].upper())
    given = str(ticker).upper().rsplit(":", 1)[-1].removesuffix(".P")
    if re.sub(r"[^A-Z0-9]", "", given) != wanted:
        raise AppError("wrong_symbol", f"This bot trades {bot.symbol}, not {str(ticker)[:40]}.",
                       400, details={"ticker": [f"expected {bot.symbol}"]})  # fmt: skip


def _record(bot: Bot, action: str, signal_id: str) -> tuple[Signal, bool]:
    """The signal's row, written now (True) or by an earlier request with the same id."""
    targets = PERP_TARGETS if bot.is_perp else SPOT_TARGETS
    try:
        with transaction.atomic():
            signal = Signal.objects.create(
                bot=bot, signal_id=signal_id, action=action, target=targets[action]
            )
        logger.info("bot.signal", extra=context(bot_id=bot.pk, signal_id=signal_id, action=action))
        return signal, True
    except IntegrityError:
        return Signal.objects.get(bot=bot, signal_id=signal_id), False


def _claim(bot: Bot) -> str:
    for attempt in range(CLAIM_TRIES):
        token = lease_claim(bot.pk)
        if token is not None:
            return token
        if not Bot.objects.filter(pk=bot.pk, status=Bot.Status.RUNNING).exists():
            raise AppError("bot_not_running", "The bot is no longer running.", 409)
        if attempt < CLAIM_TRIES - 1:
            time.sleep(CLAIM_PAUSE_SECONDS)
    raise AppError("bot_busy", "The bot is in the middle of a tick; try again in a moment.", 409)


# --- acting on it, under the lease -------------------------------------------------------------


def _act(bot: Bot, signal: Signal, market: BotMarket, updates: BotUpdates) -> None:
    """What a tick does, on the signal's target and the exchange's prices now."""
    open_ids = orders_reconcile(bot, market, updates)
    price = ticker_price(market.exchange.fetch_ticker(bot.symbol), "bid")
    position = _position_now(bot, market, price, updates)
    if daily_loss_hit(bot, market, position, updates):
        stop_finish(bot, market, updates)
        _finish(bot, signal, Signal.Outcome.REFUSED, "the daily loss limit was reached; the bot "
                "stopped", None, updates)  # fmt: skip
        return
    bot.risk_exit_target = None  # a signal is a new one: an earlier stop-loss does not hold it
    state = TickState(bot, market, signal.target, position, (price, price), open_ids)
    state.trigger_exit = None
    decision = (decide_perp if bot.is_perp else decide)(state.at_market())
    candle_ms = bot.last_candle_ms if bot.last_candle_ms is not None else market.newest_closed()
    stamp = signal_stamp(signal.pk)
    if bot.is_perp:
        decision, placed = perp_execute(bot, market, decision, state.at_market, candle_ms,
                                        updates, stamp=stamp)  # fmt: skip
    else:
        placed = orders_execute(bot, market, decision, candle_ms, updates, stamp=stamp)
    if placed and opened_position(bot, decision):
        protect_entry(bot, market, state.rules, candle_ms, updates, stamp=stamp)
    order = _order_of(bot, signal)
    outcome, message = _outcome(decision, order)
    Bot.objects.filter(pk=bot.pk).update(risk_exit_target=decision.risk_exit_target)
    bot.risk_exit_target = decision.risk_exit_target
    _finish(bot, signal, outcome, message, order, updates)
    if bot.is_perp:
        updates.position(bot, perp_position_sync(bot, market, updates))
    else:
        updates.position(bot, position_mark(position_of(bot), price))


def _position_now(bot: Bot, market: BotMarket, price: Decimal, updates: BotUpdates) -> Position:
    if bot.is_perp:
        return perp_position_sync(bot, market, updates)
    return position_mark(position_of(bot), price, save=False)


def _order_of(bot: Bot, signal: Signal) -> Order | None:
    """The signal's last market order that the exchange took (a flip's: the opening one),
    whichever attempt sent it."""
    prefix = f"{bot_order_prefix(bot.pk)}{signal_stamp(signal.pk)}-"
    return (
        bot.orders.filter(client_order_id__startswith=prefix, order_type=Order.Type.MARKET)
        .exclude(status=Order.Status.REJECTED)
        .order_by("-id")
        .first()
    )


def _outcome(decision: Decision, order: Order | None) -> tuple[str, str]:
    if order is not None:
        return Signal.Outcome.TRADED, f"{order.side} {order.qty.normalize():f} ({order.status})"
    if decision.skip is not None:
        return Signal.Outcome.SKIPPED, f"{decision.skip.kind}: {decision.skip.message}"
    if decision.place is not None:
        return Signal.Outcome.REJECTED, "the exchange refused the order (see the bot's log)"
    return Signal.Outcome.HELD, "the bot was there already"


def _finish(
    bot: Bot, signal: Signal, outcome: str, message: str, order: Order | None,
    updates: BotUpdates,
) -> None:  # fmt: skip
    """Record what the signal did: on the signal, the bot (its target) and the bot's log."""
    with transaction.atomic():
        Signal.objects.filter(pk=signal.pk).update(outcome=outcome, message=message, order=order)
        Bot.objects.filter(pk=bot.pk).update(signal_target=signal.target)
        bot_event(
            bot, "signal", f"Signal {signal.action} ({signal.signal_id}): {outcome}, {message}.",
            data={"signal_id": signal.signal_id, "action": signal.action, "outcome": outcome,
                  "client_order_id": order.client_order_id if order is not None else None},
            updates=updates,
        )  # fmt: skip
    signal.outcome, signal.message, signal.order = outcome, message, order
    bot.signal_target = signal.target
    logger.info(
        "bot.signal_done",
        extra=context(bot_id=bot.pk, signal_id=signal.signal_id, action=signal.action,
                      outcome=outcome,
                      client_order_id=order.client_order_id if order is not None else ""),
    )  # fmt: skip
