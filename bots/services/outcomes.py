"""What a tick did (``TickResult``), and how it is recorded: the ``BotEvent`` of its decision
and its log line. Shared by the single tick and the batched one, which record alike."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bots.decisions import Decision
from bots.events import decimal_text
from bots.models import Bot, BotEvent
from markets.timeframes import timeframe_ms
from tradingbot import metrics
from tradingbot.logconfig import context

logger = logging.getLogger("bots.tick")


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
    candles: int = 0  # candles acted on: more than one when a replay catches up
    quiet: bool = False  # a retry within an incident already reported: no log line


def tick_event(decision: Decision, target: int, candle_ms: int) -> dict[str, Any]:
    """The ``BotEvent`` fields that record a tick's decision (kind, message, level, data)."""
    data: dict[str, Any] = {"candle_ms": candle_ms, "signal": target, "action": decision.action}
    if decision.place is not None:
        data.update(side=decision.place.side, qty=decimal_text(decision.place.qty),
                    reason=decision.place.reason)  # fmt: skip
    if decision.then is not None:  # a perp flip's opening order, after the close
        data["then"] = {"side": decision.then.side, "qty": decimal_text(decision.then.qty)}
    if decision.skip is not None:
        data["skip"] = decision.skip.kind
        return {"kind": decision.skip.kind, "message": decision.skip.message,
                "level": BotEvent.Level.WARNING, "data": data}  # fmt: skip
    moment = datetime.fromtimestamp(candle_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
    message = f"Candle {moment}: signal {target:+d}, {decision.action}"
    if decision.place is not None:
        message += f" {decimal_text(decision.place.qty)} ({decision.place.reason})"
    if decision.then is not None:
        message += f", then {decision.then.side} {decimal_text(decision.then.qty)} (opening)"
    return {"kind": "tick", "message": message, "level": BotEvent.Level.INFO, "data": data}


def log_tick(bot: Bot, result: TickResult, seconds: float) -> None:
    """The tick's one log line (``bot.tick``); none for a tick that did not run, or for a
    retry the incident's first line already reported."""
    observe_tick_latency(bot, result)
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
            candles=result.candles,
            ms=round(seconds * 1000, 1),
        ),
    )


def observe_tick_latency(bot: Bot, result: TickResult) -> None:
    """The tick latency metric: from the close of the candle the tick handled, on the bot's
    clock (the wall clock, or the replay's, mapped back to the wall clock), to now."""
    if result.candle_ms is None:
        return
    step = timeframe_ms(bot.timeframe)
    close_ms = result.candle_ms + step
    closed_at = close_ms / 1000
    if bot.data_source == Bot.DataSource.REPLAY and bot.replay_started_at and bot.replay_speed:
        candles_since_start = (close_ms - (bot.replay_resume_ms or close_ms)) / step
        closed_at = bot.replay_started_at + candles_since_start * 60.0 / bot.replay_speed
    metrics.TICK_LATENCY.observe(time.time() - closed_at, source=bot.data_source)
