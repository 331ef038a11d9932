"""The trading tick: one bot, one closed candle, at most one decision.

A tick (``bot_tick``):

1. claims the bot with a lease: a conditional UPDATE that only one worker can win, so two ticks
   of one bot never overlap; a worker killed mid-tick frees the bot when the lease lapses;
2. reconciles with the exchange: every order the books still hold as pending or open is read
   back by its ``client_order_id`` and adopted as the exchange has it;
3. loads the closed candles and computes the signal with ``Strategy.positions``, the function
   the backtest runs;
4. decides with the pure ``bots.decisions.decide``;
5. places and cancels orders. An order is written ``pending`` under a deterministic
   ``client_order_id`` (bot, candle, side) BEFORE it is sent, so a second tick on the same
   candle finds it taken, and a crash after sending is repaired by step 2 of the next tick
   instead of sending again. An answer that holds only the order's ids (Bitget's) is read back
   at once, so a fill or a cancel is booked in the tick that made it;
6. books fills, trades and the position, writes one ``BotEvent`` and one log line, and
   publishes the update after commit.

Failures: an authentication error or an exception of the strategy (or of the tick itself) puts
the bot in ``error``; a transient exchange error retries with exponential backoff and is logged
once per incident; funds and minimums refuse the order and are recorded as an event.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Sum, Value, When
from django.utils import timezone

from bots.decisions import (
    Decision,
    RiskSettings,
    TickInputs,
    decide,
    minimum_problem,
    round_down,
)
from bots.events import bot_candle_data, decimal_text, order_data, position_data, trade_data
from bots.models import Bot, BotEvent, Order
from bots.order_ids import client_order_id, is_bot_order, stop_order_id
from bots.services.books import order_apply_result, position_mark, position_of
from bots.services.events import (
    bot_event,
    bot_publish,
    bot_set_status,
    updates_sent_together,
)
from bots.services.lease import ACTIVE, lease_claim, lease_release
from bots.services.markets import BotMarket
from markets.exchanges.errors import (
    BelowMinimumError,
    ExchangeAuthError,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
)
from markets.exchanges.paper import PaperExchange
from markets.exchanges.prices import ReplayEndedError
from strategies.registry import active as strategy_registry
from tradingbot.logconfig import context

logger = logging.getLogger("bots.tick")
LATE_CANDLE_RETRY_SECONDS = 2


@dataclass(frozen=True)
class TickResult:
    """What one tick did: ``outcome`` is one of ``busy`` (another tick holds the bot),
    ``idle`` (not running), ``waiting`` (no new candle), ``traded``, ``held``, ``skipped``,
    ``stopped``, ``retry`` or ``error``."""

    bot_id: int
    outcome: str
    candle_ms: int | None = None
    orders: int = 0
    late: bool = False  # the newest closed candle is not there yet
    quiet: bool = False  # a retry within an incident already reported: no log line


# --- the tick ----------------------------------------------------------------------------------


def bot_tick(*, bot_id: int, clock: Callable[[], float] = time.time) -> TickResult:
    """Run one tick of the bot (see the module docstring). Never raises for a bot's failure:
    the failure is recorded on the bot, so a task wrapper has nothing to retry."""
    token = lease_claim(bot_id)
    if token is None:
        status = Bot.objects.filter(pk=bot_id).values_list("status", flat=True).first()
        return TickResult(bot_id, "busy" if status in ACTIVE else "idle")
    bot = Bot.objects.select_related("exchange_account", "user").get(pk=bot_id)
    started = time.perf_counter()
    with updates_sent_together():
        result = tick_claimed(bot, token, clock)
    log_tick(bot, result, time.perf_counter() - started)
    return result


def tick_claimed(bot: Bot, token: str, clock: Callable[[], float]) -> TickResult:
    bot_id = bot.pk
    try:
        market = BotMarket.of(bot, clock=clock)
        if bot.status == Bot.Status.STOPPING:
            result = _finish_stop(bot, market)
        else:
            result = _trade(bot, market)
            if result.outcome != "stopped" and _stop_requested(bot):
                result = _finish_stop(bot, market, candle_ms=result.candle_ms)
        lease_release(bot_id, token, **_after_success(bot, market, result))
    except ReplayEndedError as error:
        result = _replay_ended(bot, error)
        lease_release(bot_id, token)
    except ExchangeError as error:
        result = _exchange_failure(bot, error)
        lease_release(bot_id, token, **_retry_fields(bot, error))
    except Exception as error:
        result = _crash(bot, error)
        lease_release(bot_id, token)
    return result


def _stop_requested(bot: Bot) -> bool:
    """A stop asked for while this tick held the bot is carried out before it lets go."""
    return Bot.objects.filter(pk=bot.pk, status=Bot.Status.STOPPING).exists()


def _after_success(bot: Bot, market: BotMarket, result: TickResult) -> dict[str, Any]:
    next_tick = market.next_tick_at()
    if result.late:  # the exchange has not published the closed candle yet: ask again soon
        next_tick = min(next_tick, timezone.now() + timedelta(seconds=LATE_CANDLE_RETRY_SECONDS))
    now = timezone.now()
    # A stop asked for after this tick last looked is due at once, not at the next candle.
    due = Case(When(status=Bot.Status.STOPPING, then=Value(now)), default=Value(next_tick))
    fields: dict[str, Any] = {"last_tick_at": now, "next_tick_at": due}
    if result.candle_ms is not None:
        fields["last_candle_ms"] = result.candle_ms
    if bot.error_streak:
        fields["error_streak"] = 0
        bot_event(bot, "exchange_recovered", "The exchange answers again; trading resumed.")
    return fields


def _trade(bot: Bot, market: BotMarket) -> TickResult:
    open_ids = _reconcile(bot, market)
    newest = market.newest_closed()
    if bot.last_candle_ms is not None and newest <= bot.last_candle_ms:
        return TickResult(bot.pk, "waiting")
    candles = market.closed_candles(newest)
    late = market.feed is None  # a live exchange may publish a closed candle a little late
    if candles.empty:
        return TickResult(bot.pk, "waiting", late=late)
    candle_ms = int(candles["open_time"].iloc[-1])
    if bot.last_candle_ms is not None and candle_ms <= bot.last_candle_ms:
        return TickResult(bot.pk, "waiting", late=late)
    bot_publish(bot, "bot.candle", bot_candle_data(bot, candles))
    target = signal_of(bot, candles)
    extremes = range_since(candles, bot.last_candle_ms)
    close = Decimal(repr(float(candles["close"].iloc[-1])))
    position = position_mark(position_of(bot), close, save=False)
    if _daily_loss_hit(bot, market, position):
        # Checked before deciding: a bot restarted on the day it hit the limit does not enter.
        return _finish_stop(bot, market, candle_ms=candle_ms)
    state = TickState(bot, market, target, position, extremes, open_ids)
    inputs = state.at_mark(close)
    decision = decide(inputs)
    if not decision.is_hold:  # it may trade: decide again on the exchange's prices and balance
        inputs = state.at_market()
        decision = decide(inputs)
    placed = _execute(bot, market, decision, candle_ms)
    with transaction.atomic():
        position = position_mark(position_of(bot) if placed else position, close)
        if decision.risk_exit_target != bot.risk_exit_target:
            Bot.objects.filter(pk=bot.pk).update(risk_exit_target=decision.risk_exit_target)
        bot_event(bot, **tick_event(decision, target, candle_ms))
    bot_publish(bot, "bot.position", position_data(position))
    outcome = "traded" if placed else ("skipped" if decision.skip else "held")
    return TickResult(bot.pk, outcome, candle_ms=candle_ms, orders=placed)


# (strategy, params, market, newest candle) -> target, newest entries last.
_signals: OrderedDict[tuple[Any, ...], int] = OrderedDict()
SIGNAL_CACHE_SIZE = 4096


def signal_of(bot: Bot, candles: Any) -> int:
    """The strategy's target after the newest candle. Strategies are pure functions of their
    parameters and the closed candles, so bots running the same strategy and parameters on the
    same market share one computation per candle (per worker process)."""
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


def range_since(candles: Any, last_candle_ms: int | None) -> tuple[Decimal, Decimal]:
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
        self, bot: Bot, market: BotMarket, target: int, position: Any,
        extremes: tuple[Decimal, Decimal], open_ids: tuple[str, ...],
    ) -> None:  # fmt: skip
        self.bot, self.market, self.target = bot, market, target
        self.position, self.open_ids = position, open_ids
        self.high, self.low = extremes
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
        return self._inputs(ask=_price(ticker, "ask"), bid=_price(ticker, "bid"), free_quote=free)

    def _inputs(self, *, ask: Decimal, bid: Decimal, free_quote: Decimal) -> TickInputs:
        bot = self.bot
        return TickInputs(
            target=self.target,
            position_qty=self.position.qty,
            entry_price=self.position.entry_price,
            open_order_ids=self.open_ids,
            risk=RiskSettings(
                order_size_kind=bot.order_size_kind,
                order_size=bot.order_size,
                max_position=bot.max_position,
                stop_loss_pct=bot.stop_loss_pct,
                take_profit_pct=bot.take_profit_pct,
            ),
            rules=self.rules,
            free_quote=free_quote,
            ask=ask,
            bid=bid,
            high=self.high,
            low=self.low,
            risk_exit_target=bot.risk_exit_target,
        )


def _price(ticker: dict[str, Any], side: str) -> Decimal:
    info = ticker.get("info")
    if isinstance(info, dict) and isinstance(info.get(side), str):
        return Decimal(info[side])
    value = ticker.get(side) or ticker.get("last") or ticker.get("close")
    return Decimal(str(value))


# --- orders ------------------------------------------------------------------------------------


def _execute(bot: Bot, market: BotMarket, decision: Decision, candle_ms: int) -> int:
    """Cancel and place what the decision says; the number of orders placed."""
    for cid in decision.cancels:
        _cancel(bot, market, cid)
    if decision.place is None:
        return 0
    place = decision.place
    cid = client_order_id(bot.pk, candle_ms, place.side)
    return 1 if _send(bot, market, cid, place.side, place.qty, place.reason, candle_ms) else 0


def _send(
    bot: Bot, market: BotMarket, cid: str, side: str, qty: Decimal, reason: str, candle_ms: int
) -> Order | None:
    """Write the order, send it, book the answer. None when this decision was already taken."""
    try:
        with transaction.atomic():
            order = Order.objects.create(
                bot=bot, client_order_id=cid, symbol=bot.symbol, side=side,
                order_type=Order.Type.MARKET, qty=qty, reason=reason, candle_ms=candle_ms,
            )  # fmt: skip
    except IntegrityError:
        logger.info(
            "bot.order_duplicate",
            extra=context(bot_id=bot.pk, symbol=bot.symbol, action=side, client_order_id=cid),
        )
        return None
    try:
        result = market.exchange.create_order(
            bot.symbol, Order.Type.MARKET, side, qty, client_order_id=cid
        )
    except BelowMinimumError as error:  # refused before anything was sent
        _rejected(bot, order, error)
        return None
    except InvalidOrderError as error:
        # Exchanges word "this client id is taken" differently (the paper exchange says
        # duplicate_client_order_id, Bitget an invalid order): if an order under our id exists,
        # it is the one we sent before, and it is adopted instead of refused.
        placed = _placed_before(market, bot.symbol, cid)
        if placed is None:
            _rejected(bot, order, error)
            return None
        result = placed
    except InsufficientFundsError as error:
        _rejected(bot, order, error)
        return None
    result = _read_back(bot, market, cid, result)
    base = market.exchange.market_rules(bot.symbol).base
    trades = order_apply_result(order, result, base=base)
    order.refresh_from_db()
    _announce_order(bot, order, trades)
    return order


def _placed_before(market: BotMarket, symbol: str, cid: str) -> dict[str, Any] | None:
    try:
        return market.exchange.fetch_order(None, symbol, client_order_id=cid)
    except OrderNotFoundError:
        return None


def _rejected(bot: Bot, order: Order, error: ExchangeError) -> None:
    Order.objects.filter(pk=order.pk).update(status=Order.Status.REJECTED, error=error.message)
    bot_event(
        bot, error.code, f"{order.side} order refused: {error.message}",
        level=BotEvent.Level.WARNING, data={"client_order_id": order.client_order_id},
    )  # fmt: skip


def _cancel(bot: Bot, market: BotMarket, cid: str) -> None:
    order = bot.orders.get(client_order_id=cid)
    try:
        result = market.exchange.cancel_order(order.exchange_order_id, bot.symbol)
    except (OrderNotFoundError, InvalidOrderError):
        # Filled or gone meanwhile: whatever it is now, read it back.
        result = market.exchange.fetch_order(None, bot.symbol, client_order_id=cid)
    result = _read_back(bot, market, cid, result)
    base = market.exchange.market_rules(bot.symbol).base
    trades = order_apply_result(order, result, base=base)
    order.refresh_from_db()
    _announce_order(bot, order, trades)


def _read_back(bot: Bot, market: BotMarket, cid: str, result: dict[str, Any]) -> dict[str, Any]:
    """The order as the exchange now has it, when its answer held the ids only (Bitget answers
    a new or a cancelled order so): the books must not wait a candle for the fill or the cancel.
    If it cannot be read yet, the ids are kept and the next tick's reconcile reads it."""
    if result.get("status") is not None:
        return result
    order_id = str(result.get("id") or "") or None
    try:
        return market.exchange.fetch_order(order_id, bot.symbol, client_order_id=cid)
    except ExchangeError:
        return result


def _reconcile(bot: Bot, market: BotMarket) -> tuple[str, ...]:
    """Adopt what the exchange holds for every order the books have as pending or open; the
    client ids of the orders still open afterwards."""
    base = market.exchange.market_rules(bot.symbol).base
    still_open = []
    for order in bot.orders.filter(status__in=Order.OPEN_STATUSES).order_by("id"):
        try:
            result = market.exchange.fetch_order(
                order.exchange_order_id or None, bot.symbol, client_order_id=order.client_order_id
            )
        except OrderNotFoundError:
            _never_arrived(bot, order)
            continue
        trades = order_apply_result(order, result, base=base)
        order.refresh_from_db()
        _announce_order(bot, order, trades, adopted=True)
        if order.status == Order.Status.OPEN:
            still_open.append(order.client_order_id)
    if first_tick_since_a_change(bot):
        still_open.extend(_adopt_unknown_open_orders(bot, market))
    return tuple(still_open)


def first_tick_since_a_change(bot: Bot) -> bool:
    """Every status change (start, stop, error) stamps ``updated_at``; a tick does not."""
    return bot.last_tick_at is None or bot.last_tick_at <= bot.updated_at


def _never_arrived(bot: Bot, order: Order) -> None:
    """An order the exchange does not know.

    A pending one never reached it (the crash or the network failure came before the send): its
    row is removed, which frees its ``client_order_id`` so that the same decision may be sent
    again under the same id (should the lost request arrive after all, the exchange refuses the
    second one as a duplicate and the tick adopts the first). An open one that vanished is
    closed in the books.
    """
    if order.status == Order.Status.PENDING:
        order.delete()
        message = f"{order.side} order {order.client_order_id} never reached the exchange"
    else:
        Order.objects.filter(pk=order.pk).update(
            status=Order.Status.CANCELED, error="the exchange no longer knows this order"
        )
        message = f"{order.side} order {order.client_order_id} is gone from the exchange"
    bot_event(
        bot, "order_not_found", message, level=BotEvent.Level.WARNING,
        data={"client_order_id": order.client_order_id},
    )  # fmt: skip


def _adopt_unknown_open_orders(bot: Bot, market: BotMarket) -> list[str]:
    """Open orders on the exchange that carry this bot's id prefix but are missing from the
    books (a database restored from an older backup) are taken into the books. Asked on the
    first tick after a start, not on every tick: a live account has a request budget."""
    adopted = []
    for result in market.exchange.fetch_open_orders(bot.symbol):
        cid = str(result.get("clientOrderId") or "")
        if not is_bot_order(bot.pk, cid) or Order.objects.filter(client_order_id=cid).exists():
            continue
        order = Order.objects.create(
            bot=bot, client_order_id=cid, symbol=bot.symbol, side=result.get("side") or "buy",
            order_type=result.get("type") or Order.Type.LIMIT,
            price=Decimal(str(result["price"])) if result.get("price") else None,
            qty=Decimal(str(result.get("amount") or 0)), reason="adopted", candle_ms=0,
        )  # fmt: skip
        order_apply_result(order, result, base=market.exchange.market_rules(bot.symbol).base)
        bot_event(bot, "order_adopted", f"open order {cid} found on the exchange and adopted")
        adopted.append(cid)
    return adopted


def _announce_order(bot: Bot, order: Order, trades: list[Any], *, adopted: bool = False) -> None:
    verb = "adopted" if adopted else "placed"
    logger.info(
        "bot.order",
        extra=context(
            bot_id=bot.pk,
            symbol=bot.symbol,
            action=f"{order.side}_{verb}",
            client_order_id=order.client_order_id,
            order_status=order.status,
            qty=str(order.qty),
            filled=str(order.filled_qty),
            price=str(order.average_price or ""),
        ),
    )
    bot_publish(bot, "bot.order", order_data(order))
    for trade in trades:
        bot_publish(bot, "bot.trade", trade_data(trade))
    if trades:  # a fill moved the position (a stop's flatten, a fill found on reconcile)
        bot_publish(bot, "bot.position", position_data(position_of(bot)))


# --- stopping ----------------------------------------------------------------------------------


def _finish_stop(bot: Bot, market: BotMarket, *, candle_ms: int | None = None) -> TickResult:
    """Cancel the bot's open orders, close the position when asked, and mark it stopped."""
    _reconcile(bot, market)
    for cid in bot.orders.filter(status=Order.Status.OPEN).values_list(
        "client_order_id", flat=True
    ):
        _cancel(bot, market, cid)
    bot.refresh_from_db(fields=["stop_flatten", "status"])
    placed = 0
    if bot.stop_flatten:
        placed = _flatten(bot, market)
    bot_set_status(bot, Bot.Status.STOPPED, expected=(Bot.Status.STOPPING,))
    flattened = " and closed the position" if placed else ""
    bot_event(bot, "stopped", f"Stopped: open orders cancelled{flattened}.")
    return TickResult(bot.pk, "stopped", candle_ms=candle_ms, orders=placed)


def _flatten(bot: Bot, market: BotMarket) -> int:
    position = position_of(bot)
    if position.qty <= 0:
        return 0
    rules = market.exchange.market_rules(bot.symbol)
    qty = round_down(position.qty, rules.amount_step)
    bid = _price(market.exchange.fetch_ticker(bot.symbol), "bid")
    problem = minimum_problem(qty, bid, rules)
    if problem is not None:  # dust: no exchange would take it
        bot_event(bot, "below_minimum", f"position not closed: {problem}",
                  level=BotEvent.Level.WARNING)  # fmt: skip
        return 0
    cid = stop_order_id(bot.pk, bot.orders.count())
    order = _send(bot, market, cid, Order.Side.SELL, qty, "stop", bot.last_candle_ms or 0)
    return 1 if order is not None else 0


def _daily_loss_hit(bot: Bot, market: BotMarket, position: Any) -> bool:
    """Today's realised PnL plus the open position's unrealised PnL at or below minus the limit
    stops the bot and closes its position. "Today" is the market's UTC day."""
    if bot.daily_loss_limit is None:
        return False
    day_start = datetime.fromtimestamp(market.now_ms() / 1000, tz=UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    realised = bot.trades.filter(time__gte=day_start).aggregate(total=Sum("pnl"))["total"]
    today = (realised or Decimal(0)) + position.unrealized_pnl
    if today > -bot.daily_loss_limit:
        return False
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.STOPPING, stop_flatten=True)
    bot.status, bot.stop_flatten = Bot.Status.STOPPING, True
    bot_event(
        bot, "daily_loss_limit",
        f"Today's PnL {today.normalize():f} reached the daily loss limit of "
        f"{bot.daily_loss_limit.normalize():f}; stopping and closing the position.",
        level=BotEvent.Level.WARNING, data={"pnl_today": str(today)},
    )  # fmt: skip
    return True


# --- failures ----------------------------------------------------------------------------------


def _replay_ended(bot: Bot, error: ReplayEndedError) -> TickResult:
    bot_set_status(bot, Bot.Status.STOPPED, expected=ACTIVE)
    bot_event(bot, "replay_ended", f"Stopped: {error.message}.")
    return TickResult(bot.pk, "stopped")


def _exchange_failure(bot: Bot, error: ExchangeError) -> TickResult:
    if error.transient:
        if bot.error_streak == 0:  # one event per incident, not one per try
            bot_event(
                bot, "exchange_unavailable",
                f"{error.message}; retrying with backoff.", level=BotEvent.Level.WARNING,
            )  # fmt: skip
        return TickResult(bot.pk, "retry", quiet=bot.error_streak > 0)
    message = str(error.message)
    if isinstance(error, ExchangeAuthError):
        message = f"{error.message}: check the exchange account's API key"
    bot_set_status(bot, Bot.Status.ERROR, expected=ACTIVE, last_error=message)
    bot_event(bot, error.code, message, level=BotEvent.Level.ERROR)
    return TickResult(bot.pk, "error")


def _retry_fields(bot: Bot, error: ExchangeError) -> dict[str, Any]:
    if not error.transient:
        return {}
    delay = min(2 ** (bot.error_streak + 1), settings.BOT_MAX_BACKOFF_SECONDS)
    return {"error_streak": bot.error_streak + 1,
            "next_tick_at": timezone.now() + timedelta(seconds=delay)}  # fmt: skip


def _crash(bot: Bot, error: Exception) -> TickResult:
    """A bug (in a strategy or here): the bot stops in ``error``; other bots are not touched."""
    logger.error(
        "bot.tick_failed",
        exc_info=error,
        extra=context(bot_id=bot.pk, symbol=bot.symbol, action="error",
                      error=type(error).__name__),
    )  # fmt: skip
    message = f"{type(error).__name__}: {error}"
    bot_set_status(bot, Bot.Status.ERROR, expected=ACTIVE, last_error=message)
    bot_event(
        bot, "tick_failed", message, level=BotEvent.Level.ERROR,
        data={"traceback": traceback.format_exc(limit=20)[-4000:]},
    )  # fmt: skip
    return TickResult(bot.pk, "error")


# --- reporting ---------------------------------------------------------------------------------


def tick_event(decision: Decision, target: int, candle_ms: int) -> dict[str, Any]:
    """The ``BotEvent`` fields that record a tick's decision (kind, message, level, data)."""
    data: dict[str, Any] = {"candle_ms": candle_ms, "signal": target, "action": decision.action}
    if decision.place is not None:
        data.update(side=decision.place.side, qty=decimal_text(decision.place.qty),
                    reason=decision.place.reason)  # fmt: skip
    if decision.skip is not None:
        data["skip"] = decision.skip.kind
        return {"kind": decision.skip.kind, "message": decision.skip.message,
                "level": BotEvent.Level.WARNING, "data": data}  # fmt: skip
    moment = datetime.fromtimestamp(candle_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
    message = f"Candle {moment}: signal {target:+d}, {decision.action}"
    if decision.place is not None:
        message += f" {decimal_text(decision.place.qty)} ({decision.place.reason})"
    return {"kind": "tick", "message": message, "level": BotEvent.Level.INFO, "data": data}


def log_tick(bot: Bot, result: TickResult, seconds: float) -> None:
    if result.outcome in ("busy", "idle") or result.quiet:
        return
    logger.info(
        "bot.tick",
        extra=context(
            bot_id=bot.pk,
            symbol=bot.symbol,
            action=result.outcome,
            candle_ms=result.candle_ms,
            orders=result.orders,
            ms=round(seconds * 1000, 1),
        ),
    )
