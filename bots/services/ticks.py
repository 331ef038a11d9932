"""The trading tick: one bot, one closed candle, at most one decision.

A tick (``bot_tick``), top to bottom:

1. claims the bot (``lease``): a conditional UPDATE that only one worker can win, so two ticks
   of one bot never overlap; a worker killed mid-tick frees the bot when the lease lapses;
2. reconciles with the exchange (``orders``): every order the books still hold as pending or
   open is read back by its ``client_order_id`` and adopted as the exchange has it; on the paper
   exchange, the candles closed since the last decision first fire the bot's stop-loss /
   take-profit trigger orders that they reach (``protection``), so that a stop fills inside
   its candle as in the backtest;
3. finds the candle that closed since its last tick, and computes the signal on the closed
   candles with ``Strategy.positions``, the function the backtest runs (a replay bot that fell
   behind its schedule goes through steps 2 to 6 for each candle it missed, in order, a
   bounded number per tick: ``_catch_up``; it never skips one);
4. checks the daily loss limit (``stopping``), then decides with the pure
   ``bots.decisions.decide``: at the last close first, and only when that might trade, again
   on the exchange's prices and balance;
5. cancels and places orders (``orders``: written before they are sent, under ids that make a
   decision's order exactly-once, and booked in the tick that sent them); an entry that filled
   gets its stop-loss / take-profit trigger orders at once (``protection.protect_entry``);
6. marks the position to the close, writes one ``BotEvent`` (its decision), and carries out a
   stop asked for meanwhile (``stopping``);
7. frees the bot with its bookkeeping (the next tick's time), publishes what it announces, and
   writes one log line (``outcomes``).

What a tick announces (orders, fills, the position, bot events, status changes, the candle) is
gathered in the one ``BotUpdates`` it passes along, in the order it happened, and published
once at the end, after commit. Failures (``failures``): an authentication error or an exception
of the strategy (or of the tick itself) puts the bot in ``error``; a transient exchange error
retries with exponential backoff and is reported once per incident.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from bots.decisions import Decision, TickInputs, decide
from bots.events import bot_candle_data
from bots.models import Bot, Position
from bots.perp_decisions import decide_perp
from bots.services.books import position_mark, position_of
from bots.services.equity import bot_equity_row
from bots.services.events import BotUpdates, bot_event
from bots.services.failures import (
    crash,
    exchange_failure,
    recovered_fields,
    replay_ended,
    retry_fields,
)
from bots.services.lease import ACTIVE, lease_claim, lease_release
from bots.services.markets import BotMarket, ticker_price
from bots.services.orders import orders_execute, orders_reconcile
from bots.services.outcomes import TickResult, log_tick, tick_event
from bots.services.perp_sync import perp_position_sync
from bots.services.perp_ticks import candles_settle, perp_execute, perp_terms
from bots.services.protection import open_triggers, protect_entry, risk_of, trigger_exit
from bots.services.stopping import daily_loss_hit, stop_finish
from markets.exchanges.errors import ExchangeError
from markets.exchanges.paper import PaperExchange
from markets.exchanges.prices import ReplayEndedError
from strategies.registry import active as strategy_registry

LATE_CANDLE_RETRY_SECONDS = 2
SIGNALS_STRATEGY = "signals"  # strategies.builtin.signals: trades on received signals only


def bot_tick(*, bot_id: int, clock: Callable[[], float] = time.time) -> TickResult:
    """Run one tick of the bot (see the module docstring). Never raises for a bot's failure:
    the failure is recorded on the bot, so a task wrapper has nothing to retry."""
    token = lease_claim(bot_id)
    if token is None:
        status = Bot.objects.filter(pk=bot_id).values_list("status", flat=True).first()
        return TickResult(bot_id, "busy" if status in ACTIVE else "idle")
    bot = Bot.objects.select_related("exchange_account", "user").get(pk=bot_id)
    started = time.perf_counter()
    updates = BotUpdates()
    try:
        result = tick_claimed(bot, token, clock, updates)
    finally:
        updates.publish()
    log_tick(bot, result, time.perf_counter() - started)
    return result


def tick_claimed(
    bot: Bot, token: str, clock: Callable[[], float], updates: BotUpdates
) -> TickResult:
    """The tick of a bot that the lease ``token`` holds: frees the bot when done, gathers in
    ``updates`` what the tick announces, and records a failure on the bot instead of raising."""
    try:
        market = BotMarket.of(bot, clock=clock)
        result = _trade_or_stop(bot, market, updates)
        lease_release(bot.pk, token, **_after_success(bot, market, result, updates))
    except ReplayEndedError as error:
        result = replay_ended(bot, error, updates)
        lease_release(bot.pk, token)
    except ExchangeError as error:
        result = exchange_failure(bot, error, updates)
        lease_release(bot.pk, token, **retry_fields(bot, error))
    except Exception as error:
        result = crash(bot, error, updates)
        lease_release(bot.pk, token)
    return result


def _trade_or_stop(bot: Bot, market: BotMarket, updates: BotUpdates) -> TickResult:
    if bot.status == Bot.Status.STOPPING:
        return _stop(bot, market, updates)
    result = _trade(bot, market, updates)
    if result.outcome != "stopped" and _stop_requested(bot):
        return _stop(bot, market, updates, candle_ms=result.candle_ms)
    return result


def _stop_requested(bot: Bot) -> bool:
    """A stop asked for while this tick held the bot is carried out before it lets go."""
    return Bot.objects.filter(pk=bot.pk, status=Bot.Status.STOPPING).exists()


def _stop(
    bot: Bot, market: BotMarket, updates: BotUpdates, *, candle_ms: int | None = None
) -> TickResult:
    placed = stop_finish(bot, market, updates)
    return TickResult(bot.pk, "stopped", candle_ms=candle_ms, orders=placed)


def _trade(bot: Bot, market: BotMarket, updates: BotUpdates) -> TickResult:
    if market.feed is not None:
        return _catch_up(bot, market, updates)
    candles = candles_since_last_tick(bot, market)
    if not isinstance(candles, TickResult):
        candles_settle(bot, market, candles, updates)  # a paper stop fires inside its candle
    open_ids = orders_reconcile(bot, market, updates)
    if isinstance(candles, TickResult):  # waiting for the next candle
        return candles
    return _trade_on(bot, market, candles, open_ids, updates)


def _catch_up(bot: Bot, market: BotMarket, updates: BotUpdates) -> TickResult:
    """A replay bot's tick: every stored candle from the one after the last it acted on up to
    the newest its schedule has closed, in order, each acted on as a tick of its own would
    (reconcile, decide, place, book; ``last_candle_ms`` written with it), so that a bot that
    fell behind catches up without skipping one. At most ``BOT_REPLAY_CATCH_UP_CANDLES`` per
    tick, and none begun after a quarter of its lease (``_catch_up_deadline``): the rest is due
    at once (``market.behind``). A stop asked for meanwhile ends the catching up."""
    limit = settings.BOT_REPLAY_CATCH_UP_CANDLES
    deadline = _catch_up_deadline(bot)
    pending = market.replay_pending(limit)
    if not pending:
        orders_reconcile(bot, market, updates)
        ended = market.replay_ended()
        if ended is not None:
            raise ended
        return TickResult(bot.pk, "waiting")
    results: list[TickResult] = []
    for index, candle_ms in enumerate(pending):
        if index:
            # This tick has run: unknown open orders were looked for on its first candle.
            bot.last_tick_at = timezone.now()
        market.move_to(candle_ms)
        candles = market.closed_candles(candle_ms)
        candles_settle(bot, market, candles, updates)  # this candle's paper stops fire first
        open_ids = orders_reconcile(bot, market, updates)
        results.append(_trade_on(bot, market, candles, open_ids, updates))
        last = index == len(pending) - 1  # after the last, the caller looks for a stop
        if last or results[-1].outcome == "stopped" or timezone.now() > deadline:
            break
        if _stop_requested(bot):
            break
    market.behind = len(results) < len(pending) or len(pending) == limit
    return _caught_up(bot, results)


def _catch_up_deadline(bot: Bot) -> datetime:
    """A quarter of the bot's lease after it was taken: a tick of a batch shares the batch's
    lease, so the bots late in a batch catch up less, and no tick outlives its lease."""
    lease = timedelta(seconds=settings.BOT_TICK_LEASE_SECONDS)
    until = bot.tick_lease_until or timezone.now() + lease
    return until - lease * 3 / 4


def _caught_up(bot: Bot, results: list[TickResult]) -> TickResult:
    """One result for the candles of a catching-up tick: the last one's, ``traded`` if any
    candle traded, with every order placed counted."""
    last = results[-1]
    orders = sum(result.orders for result in results)
    outcome = "traded" if orders and last.outcome != "stopped" else last.outcome
    return TickResult(bot.pk, outcome, candle_ms=last.candle_ms, orders=orders,
                      candles=len(results))  # fmt: skip


def _trade_on(
    bot: Bot, market: BotMarket, candles: pd.DataFrame, open_ids: tuple[str, ...],
    updates: BotUpdates,
) -> TickResult:  # fmt: skip
    """Decide on the newest of ``candles`` and carry the decision out."""
    candle_ms = int(candles["open_time"].iloc[-1])
    updates.candle(bot, bot_candle_data(bot, candles))
    target = signal_of(bot, candles)
    close = last_close(candles)
    position = _position_now(bot, market, close, updates)
    if daily_loss_hit(bot, market, position, updates):
        # Checked before deciding: a bot restarted on the day it hit the limit does not enter.
        return _stop(bot, market, updates, candle_ms=candle_ms)
    extremes = range_since(candles, bot.last_candle_ms)
    state = TickState(bot, market, target, position, extremes, open_ids)
    decide_now = decide_perp if bot.is_perp else decide
    decision = decide_now(state.at_mark(close))
    if not decision.is_hold:  # it may trade: decide again on the exchange's prices and balance
        decision = decide_now(state.at_market())
    decision, placed = _execute(bot, market, decision, state, candle_ms, updates)
    if placed and opened_position(bot, decision):
        placed += protect_entry(bot, market, state.rules, candle_ms, updates)
    with transaction.atomic():
        if bot.is_perp:  # marked to the exchange's mark price
            position = perp_position_sync(bot, market, updates) if placed else position
        else:
            position = position_mark(position_of(bot) if placed else position, close)
        # Written with the decision: a tick killed after this candle does not act on it again.
        Bot.objects.filter(pk=bot.pk).update(
            last_candle_ms=candle_ms, risk_exit_target=decision.risk_exit_target
        )
        bot_equity_row(bot, position, candle_ms).save()  # the curve's point for this candle
        bot_event(bot, **tick_event(decision, target, candle_ms), updates=updates)
    bot.last_candle_ms, bot.risk_exit_target = candle_ms, decision.risk_exit_target
    updates.position(bot, position)
    outcome = "traded" if placed else ("skipped" if decision.skip else "held")
    return TickResult(bot.pk, outcome, candle_ms=candle_ms, orders=placed, candles=1)


def _position_now(bot: Bot, market: BotMarket, close: Decimal, updates: BotUpdates) -> Position:
    """The position the tick decides on: a perp's as the exchange reports it (funding,
    liquidation, mark: ``perp_sync``), a spot one's marked to the close (saved later)."""
    if bot.is_perp:
        return perp_position_sync(bot, market, updates)
    return position_mark(position_of(bot), close, save=False)


def _execute(
    bot: Bot, market: BotMarket, decision: Decision, state: TickState, candle_ms: int,
    updates: BotUpdates,
) -> tuple[Decision, int]:  # fmt: skip
    if bot.is_perp:
        return perp_execute(bot, market, decision, state.at_market, candle_ms, updates)
    return decision, orders_execute(bot, market, decision, candle_ms, updates)


def opened_position(bot: Bot, decision: Decision) -> bool:
    """The decision sent an order that opens a position (its triggers are placed at once)."""
    if bot.is_perp:
        return decision.then is not None or (
            decision.place is not None and not decision.place.reduce_only
        )
    return decision.place is not None and decision.place.side == "buy"


def _after_success(
    bot: Bot, market: BotMarket, result: TickResult, updates: BotUpdates
) -> dict[str, Any]:
    """The bot's bookkeeping after a tick that ran, written as the lease is released."""
    now = timezone.now()
    next_tick = next_tick_at(market, now, late=result.late)
    # A stop asked for after this tick last looked is due at once, not at the next candle.
    due = Case(When(status=Bot.Status.STOPPING, then=Value(now)), default=Value(next_tick))
    fields: dict[str, Any] = {"last_tick_at": now, "next_tick_at": due}
    if result.candle_ms is not None:
        fields["last_candle_ms"] = result.candle_ms
    candle_ms = result.candle_ms if result.candle_ms is not None else bot.last_candle_ms
    updates.tick(bot, at=now, next_at=next_tick, candle_ms=candle_ms)
    return fields | recovered_fields(bot, updates)


def next_tick_at(market: BotMarket, now: datetime, *, late: bool) -> datetime:
    """When the bot is due next: when its next candle closes; soon, when the exchange has not
    published the closed candle yet (``late``)."""
    next_tick = market.next_tick_at()
    if late:
        next_tick = min(next_tick, now + timedelta(seconds=LATE_CANDLE_RETRY_SECONDS))
    return next_tick


# --- what the tick decides on ------------------------------------------------------------------


def candles_since_last_tick(bot: Bot, market: BotMarket) -> pd.DataFrame | TickResult:
    """The closed candles, when one has closed since the bot's last tick; else the tick's
    ``waiting`` result. A replay bot's are those up to the next candle it has to act on (the
    market moved to it; ``market.behind`` when more wait after it)."""
    if market.feed is not None:
        return _next_replay_candles(bot, market)
    newest = market.newest_closed()
    if bot.last_candle_ms is not None and newest <= bot.last_candle_ms:
        return TickResult(bot.pk, "waiting")
    candles = market.closed_candles(newest)
    if candles.empty:
        return TickResult(bot.pk, "waiting", late=True)
    if bot.last_candle_ms is not None and int(candles["open_time"].iloc[-1]) <= bot.last_candle_ms:
        # a live exchange may publish a closed candle a little late
        return TickResult(bot.pk, "waiting", late=True)
    return candles


def _next_replay_candles(bot: Bot, market: BotMarket) -> pd.DataFrame | TickResult:
    pending = market.replay_pending(2)
    if not pending:
        ended = market.replay_ended()
        if ended is not None:
            raise ended
        return TickResult(bot.pk, "waiting")
    market.move_to(pending[0])
    market.behind = len(pending) > 1
    return market.closed_candles(pending[0])


def last_close(candles: pd.DataFrame) -> Decimal:
    """The newest candle's close, as the Decimal of its shortest float spelling."""
    return Decimal(repr(float(candles["close"].iloc[-1])))


# (strategy, params, market, newest candle) -> target, newest entries last.
_signals: OrderedDict[tuple[Any, ...], int] = OrderedDict()
SIGNAL_CACHE_SIZE = 4096


def signal_of(bot: Bot, candles: pd.DataFrame) -> int:
    """The strategy's target after the newest candle. Strategies are pure functions of their
    parameters and the closed candles, so bots running the same strategy and parameters on the
    same market share one computation per candle (per worker process).

    The built-in ``signals`` strategy has no signal of its own: its target is the last signal
    the bot received (flat until one arrives), so the tick keeps what a signal opened."""
    if bot.strategy_id == SIGNALS_STRATEGY:
        return bot.signal_target or 0
    key = (
        bot.strategy_id, json.dumps(bot.params, sort_keys=True), bot.exchange_account.exchange,
        bot.symbol, bot.timeframe, int(candles["open_time"].iloc[0]),
        int(candles["open_time"].iloc[-1]), len(candles),
    )  # fmt: skip
    if key in _signals:
        _signals.move_to_end(key)
        return _signals[key]
    strategy = strategy_registry().create(bot.strategy_id, bot.params)
    # A copy: the candles may be shared with other bots, and a strategy may scribble on them.
    target = int(strategy.positions(candles.copy()).iloc[-1])
    _signals[key] = target
    if len(_signals) > SIGNAL_CACHE_SIZE:
        _signals.popitem(last=False)
    return target


def range_since(candles: pd.DataFrame, last_candle_ms: int | None) -> tuple[Decimal, Decimal]:
    """The highest high and lowest low of the candles closed since the last tick; without one,
    of the newest only: older candles may predate the position, and their highs and lows must
    not trigger its exits."""
    times = candles["open_time"].to_numpy()
    first = int(np.searchsorted(times, last_candle_ms, side="right")) if last_candle_ms else -1
    first = min(first, len(times) - 1) if first >= 0 else len(times) - 1
    high = candles["high"].to_numpy()[first:].max()
    low = candles["low"].to_numpy()[first:].min()
    return Decimal(repr(float(high))), Decimal(repr(float(low)))


class TickState:
    """What a decision needs, read once per tick; the exchange is asked for prices and balance
    only when the decision might trade."""

    def __init__(
        self, bot: Bot, market: BotMarket, target: int, position: Position,
        extremes: tuple[Decimal, Decimal], open_ids: tuple[str, ...],
    ) -> None:  # fmt: skip
        self.bot, self.market, self.target = bot, market, target
        self.position, self.open_ids = position, open_ids
        self.high, self.low = extremes
        self.triggers = open_triggers(bot, open_ids)
        protected = bot.stop_loss_pct is not None or bot.take_profit_pct is not None
        flat = position.qty <= 0
        # A perp's position may also end in a liquidation: looked for whenever it is flat.
        looked_for = flat and (protected or bot.is_perp)
        self.trigger_exit = trigger_exit(bot, market.step) if looked_for else None
        rules = market.exchange.market_rules(bot.symbol)
        if isinstance(market.exchange, PaperExchange):
            # An all-in entry is sized with the fee the fill will be charged: the paper
            # account's own, when it sets one, else the exchange would refuse it for funds.
            rules = dataclasses.replace(rules, taker_fee=market.exchange.taker_fee(rules))
        self.rules = rules

    def at_mark(self, mark: Decimal) -> TickInputs:
        """Inputs that can only tell "hold": no money to spend, and a bid at half the mark, so
        that a position that passes the minimums here passes them at any real bid too."""
        return self._inputs(ask=mark, bid=mark / 2, free_quote=Decimal(0))

    def at_market(self) -> TickInputs:
        ticker = self.market.exchange.fetch_ticker(self.bot.symbol)
        balance = self.market.exchange.fetch_balance()
        free = Decimal(str((balance.get("free") or {}).get(self.rules.quote) or 0))
        return self._inputs(
            ask=ticker_price(ticker, "ask"), bid=ticker_price(ticker, "bid"), free_quote=free
        )

    def _inputs(self, *, ask: Decimal, bid: Decimal, free_quote: Decimal) -> TickInputs:
        bot = self.bot
        return TickInputs(
            target=self.target,
            position_qty=self.position.qty,
            entry_price=self.position.entry_price,
            open_order_ids=self.open_ids,
            risk=risk_of(bot),
            rules=self.rules,
            free_quote=free_quote,
            ask=ask,
            bid=bid,
            high=self.high,
            low=self.low,
            risk_exit_target=bot.risk_exit_target,
            open_triggers=self.triggers,
            trigger_exit=self.trigger_exit,
            position_side=-1 if self.position.side == Position.Side.SHORT else 1,
            perp=perp_terms(bot, self.position) if bot.is_perp else None,
        )
