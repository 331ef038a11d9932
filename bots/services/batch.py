"""Ticks of many bots at once: the common case, a bot that holds, in a few queries for all.

Most ticks decide nothing: the signal has not changed, so a flat bot stays flat and a holding
bot holds. One at a time, such a tick still costs about ten queries and a trip to Redis. Here
the bots of a batch are claimed, read, recorded and released together, a handful of queries for
the whole batch, and their updates go to the channel layer in one message burst.

A bot takes this path only when nothing about it needs the exchange or a lock: running, no
order pending or open, no failure streak, not its first tick since a start (which looks for
orders to adopt), no daily loss limit to evaluate, and a decision that, taken at the last close
with no money to spend, is "hold" (``TickState.at_mark``: the same test the single tick uses to
skip asking the exchange). Every other bot, and any bot whose fast path fails, is ticked by
``bot_tick``'s own code under the lease the batch already holds (a bot holding a position under
a stop-loss or take-profit among them: its trigger orders are open; and a perp bot holding a
position, whose funding and liquidation are read back on every candle). A flat perp bot holds
here when the perp decision (``bots.perp_decisions``) says so. The two paths write the same
rows: the tick event, the position marked to the close, ``last_candle_ms`` and ``next_tick_at``,
and gather their updates in one ``BotUpdates``, published once for the whole batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from bots.decisions import decide
from bots.events import bot_candle_data
from bots.models import Bot, BotEquity, BotEvent, Order, Position
from bots.perp_decisions import decide_perp
from bots.services.books import position_mark
from bots.services.equity import bot_equity_row
from bots.services.events import BotUpdates
from bots.services.lease import leases_claim, leases_release
from bots.services.markets import BotMarket
from bots.services.orders import first_tick_since_a_change
from bots.services.outcomes import TickResult, log_tick, tick_event
from bots.services.ticks import (
    TickState,
    candles_since_last_tick,
    last_close,
    next_tick_at,
    range_since,
    signal_of,
    tick_claimed,
)
from markets.events import CandleData

Positions = dict[tuple[int, str], Position]


@dataclass
class _Held:
    """A bot the fast path ticked: what to write back for it."""

    bot: Bot
    result: TickResult
    fields: dict[str, Any]
    event: BotEvent | None = None
    position: Position | None = None
    candle: CandleData | None = None
    seconds: float = 0.0


def bots_tick_batch(
    *, bot_ids: list[int], clock: Callable[[], float] = time.time
) -> dict[str, int]:
    """Tick every bot of ``bot_ids`` (see the module docstring); outcomes counted."""
    now = timezone.now()
    token, _ = leases_claim(bot_ids)
    bots = list(
        Bot.objects.select_related("exchange_account", "user")
        .filter(tick_lease_token=token)
        .order_by("pk")
    )
    outcomes = {"busy": len(set(bot_ids)) - len(bots)}  # another tick holds them, or stopped
    if not bots:
        return outcomes
    updates = BotUpdates()
    try:
        held = _tick_each(bots, token, clock, now, updates, outcomes)
        _write_back(held, token, updates)
    finally:
        updates.publish()
    for item in held:
        log_tick(item.bot, item.result, item.seconds)
        _count(outcomes, item.result)
    return {k: v for k, v in outcomes.items() if v}


def _tick_each(
    bots: list[Bot], token: str, clock: Callable[[], float], now: datetime,
    updates: BotUpdates, outcomes: dict[str, int],
) -> list[_Held]:  # fmt: skip
    """Tick each bot: on the fast path when it holds (returned, to be written back together),
    else by the full tick (logged and counted here)."""
    with_orders = set(
        Order.objects.filter(bot__in=bots, status__in=Order.OPEN_STATUSES).values_list(
            "bot_id", flat=True
        )
    )
    positions = {(p.bot_id, p.symbol): p for p in Position.objects.filter(bot__in=bots)}
    held: list[_Held] = []
    for bot in bots:
        started = time.perf_counter()
        quick = _hold_quickly(bot, with_orders, positions, clock, now)
        if quick is None:
            result = tick_claimed(bot, token, clock, updates)
            log_tick(bot, result, time.perf_counter() - started)
            _count(outcomes, result)
            continue
        quick.seconds = time.perf_counter() - started
        held.append(quick)
    return held


def _count(outcomes: dict[str, int], result: TickResult) -> None:
    outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1


def _hold_quickly(
    bot: Bot, with_orders: set[int], positions: Positions, clock: Callable[[], float],
    now: datetime,
) -> _Held | None:  # fmt: skip
    """The bot's tick on the fast path; None when it must take the full tick."""
    if not _may_hold_quickly(bot, with_orders, positions):
        return None
    try:
        return _hold(bot, positions[bot.pk, bot.symbol], clock, now)
    except Exception:  # the full tick meets the failure again and records it
        return None


def _may_hold_quickly(bot: Bot, with_orders: set[int], positions: Positions) -> bool:
    return (
        bot.status == Bot.Status.RUNNING
        and bot.pk not in with_orders
        and (bot.pk, bot.symbol) in positions
        and not bot.error_streak
        and bot.daily_loss_limit is None
        and not first_tick_since_a_change(bot)
        # A perp position pays funding and may be liquidated: read back on every candle.
        and not (bot.is_perp and positions[bot.pk, bot.symbol].qty > 0)
    )


def _hold(bot: Bot, position: Position, clock: Callable[[], float], now: datetime) -> _Held | None:
    """The bot's tick if it decides nothing, else None (the full tick takes over)."""
    market = BotMarket.of(bot, clock=clock)
    candles = candles_since_last_tick(bot, market)
    if isinstance(candles, TickResult):  # waiting for the next candle
        return _Held(bot, candles, _release_fields(market, now, late=candles.late))
    if market.behind:  # a replay catching up: the full tick acts on several candles
        return None
    candle_ms = int(candles["open_time"].iloc[-1])
    target = signal_of(bot, candles)
    close = last_close(candles)
    position_mark(position, close, save=False)
    state = TickState(bot, market, target, position, range_since(candles, bot.last_candle_ms), ())
    decision = (decide_perp if bot.is_perp else decide)(state.at_mark(close))
    if not decision.is_hold:
        return None
    fields = _release_fields(market, now, late=False)
    fields.update(last_candle_ms=candle_ms, risk_exit_target=decision.risk_exit_target)
    event = BotEvent(bot=bot, **tick_event(decision, target, candle_ms))
    result = TickResult(bot.pk, "held", candle_ms=candle_ms, candles=1)
    return _Held(bot, result, fields, event=event, position=position,
                 candle=bot_candle_data(bot, candles))  # fmt: skip


def _release_fields(market: BotMarket, now: datetime, *, late: bool) -> dict[str, Any]:
    """One ``now`` for the whole batch: bots with equal values are written by one UPDATE."""
    return {"last_tick_at": now, "next_tick_at": next_tick_at(market, now, late=late)}


def _write_back(held: list[_Held], token: str, updates: BotUpdates) -> None:
    """Record the held ticks, free their bots (every one claimed by this batch's ``token``),
    and gather their updates: the candles, then the tick events, the positions, the tick times.

    Bots and positions that get the same values are written by one UPDATE each: the bots of
    one market and timeframe share their next tick and candle, flat positions their mark.
    (Django's ``bulk_update`` builds a CASE per row and field, which costs more than the tick.)
    """
    if not held:
        return
    now = timezone.now()
    with transaction.atomic():
        events = BotEvent.objects.bulk_create([h.event for h in held if h.event is not None])
        BotEquity.objects.bulk_create(
            bot_equity_row(h.bot, h.position, h.result.candle_ms)
            for h in held
            if h.position is not None and h.result.candle_ms is not None
        )
        for values, pks in _grouped(
            (h.position.pk, {"mark_price": h.position.mark_price,
                             "unrealized_pnl": h.position.unrealized_pnl})
            for h in held if h.position is not None
        ):  # fmt: skip
            Position.objects.filter(pk__in=pks).update(**values, updated_at=now)
        for values, pks in _grouped((h.bot.pk, h.fields) for h in held):
            leases_release(pks, token, **values)
        # A stop asked for during the batch is due at once, not at the next candle.
        Bot.objects.filter(pk__in=[h.bot.pk for h in held], status=Bot.Status.STOPPING).update(
            next_tick_at=now
        )
    for item in held:
        if item.candle is not None:
            updates.candle(item.bot, item.candle)
    for event in events:
        updates.event(event.bot, event)
    for item in held:
        if item.position is not None:
            updates.position(item.bot, item.position)
    for item in held:
        candle_ms = item.fields.get("last_candle_ms", item.bot.last_candle_ms)
        updates.tick(item.bot, at=item.fields["last_tick_at"],
                     next_at=item.fields["next_tick_at"], candle_ms=candle_ms)  # fmt: skip


def _grouped(rows: Iterable[tuple[int, dict[str, Any]]]) -> list[tuple[dict[str, Any], list[int]]]:
    """``(pk, values)`` rows grouped by equal values: ``[(values, [pk, ...]), ...]``."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for pk, values in rows:
        groups.setdefault(tuple(sorted(values.items())), []).append(pk)
    return [(dict(key), pks) for key, pks in groups.items()]
