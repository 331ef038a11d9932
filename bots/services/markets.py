"""The market a bot trades on: its exchange, its clock and its closed candles.

A replay bot runs on market time (``markets.replay.ReplayFeed``) and trades on the paper exchange
at the replay's prices; a live bot runs on the wall clock and reads its candles from the real
exchange (stored as they arrive, so every bot on one market shares them).

A replay has two clocks. Its *schedule* is the feed's market time at the wall clock: how far
the replay should have got by now, at its speed. Its *position* is the newest candle the bot
has acted on (``Bot.last_candle_ms``; before the first, the candle before the replay's start):
the paper exchange's market time is the close of that candle, so an order fills at the next
candle's open however late the bot acts. The position moves only when the bot acts on a candle,
one stored candle after the other, never over one: a bot that fell behind its schedule (its
worker was down, its ticks lagged) resumes where it stopped and catches up
(``bots.services.ticks``), and a start (``bot_start``) puts the schedule back on the position.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from django.conf import settings

from bots.models import Bot
from markets.candle_windows import candle_window
from markets.exchanges.base import Exchange
from markets.exchanges.factory import exchange_for_account
from markets.exchanges.paper import PaperExchange
from markets.exchanges.prices import ReplayEndedError, ReplayPrices, replay_ended_error
from markets.models import ExchangeAccount
from markets.replay import ReplayFeed, replay_candle_from, replay_candle_times
from markets.timeframes import timeframe_ms


def replay_feed(bot: Bot) -> ReplayFeed:
    assert bot.replay_resume_ms is not None, "a replay bot is started before it ticks"
    assert bot.replay_started_at is not None
    assert bot.replay_speed
    return ReplayFeed(
        start_ms=bot.replay_resume_ms,
        timeframe=bot.timeframe,
        seconds_per_candle=60.0 / bot.replay_speed,
        started_at=bot.replay_started_at,
    )


def replay_done_ms(bot: Bot, feed: ReplayFeed) -> int:
    """Open time of the newest candle the replay bot has acted on; before its first one, of the
    candle before the first it decides on (the newest one closed at the replay's start)."""
    before_first = feed.start_ms - 2 * feed.timeframe_ms
    return before_first if bot.last_candle_ms is None else max(bot.last_candle_ms, before_first)


@dataclass
class BotMarket:
    bot: Bot
    exchange: Exchange
    feed: ReplayFeed | None
    clock: Callable[[], float]
    prices: ReplayPrices | None = None  # a replay's: at its position (see the module docstring)
    behind: bool = False  # a replay with candles left to act on after this tick

    @classmethod
    def of(cls, bot: Bot, *, clock: Callable[[], float] = time.time) -> BotMarket:
        if bot.data_source == Bot.DataSource.REPLAY:
            feed = replay_feed(bot)
            at_ms = replay_done_ms(bot, feed) + feed.timeframe_ms
            prices = ReplayPrices(bot.exchange_account.exchange, feed, clock, at_ms=at_ms)
            exchange = PaperExchange(bot.exchange_account, prices=prices)
            return cls(bot, exchange, feed, clock, prices)
        return cls(bot, exchange_for_account(bot.exchange_account), None, clock)

    @property
    def step(self) -> int:
        return timeframe_ms(self.bot.timeframe)

    @property
    def is_paper(self) -> bool:
        return self.bot.exchange_account.mode == ExchangeAccount.Mode.PAPER

    def now_ms(self) -> int:
        """Market time: a replay's position, or the wall clock."""
        if self.prices is not None:
            return self.prices.now_ms()
        return int(self.clock() * 1000)

    def newest_closed(self) -> int:
        """Open time of the newest candle that has closed."""
        return self.now_ms() // self.step * self.step - self.step

    def next_tick_at(self) -> datetime:
        """When the next candle closes (plus the exchange's publishing delay, live); at once for
        a replay that is catching up."""
        now = self.clock()
        if self.feed is not None:
            moment = now if self.behind else now + self.feed.seconds_until_next_candle(now)
        else:
            next_close_ms = (int(now * 1000) // self.step + 1) * self.step
            moment = next_close_ms / 1000 + settings.BOT_LIVE_CLOSE_DELAY_SECONDS
        return datetime.fromtimestamp(moment, tz=UTC)

    # --- a replay's position -------------------------------------------------------------------

    def replay_pending(self, limit: int) -> list[int]:
        """Open times of the stored candles the replay bot has still to act on, from the one
        after its position up to the newest its schedule has closed: oldest first, ``limit``
        at most."""
        assert self.feed is not None, "a replay's market"
        done, until = self.now_ms() - self.step, self.feed.closed_until(self.clock())
        if until <= done:
            return []
        if done + self.step >= until - (settings.BOT_CANDLE_WINDOW - 1) * self.step:
            # All in the window the newest of them is decided on (shared, cached): no query.
            times = self.closed_candles(until)["open_time"].to_numpy()
            return [int(t) for t in times[times > done][:limit]]
        return replay_candle_times(
            self.bot.exchange_account.exchange, self.bot.symbol, self.bot.timeframe,
            after_ms=done, until_ms=until, limit=limit,
        )  # fmt: skip

    def move_to(self, candle_ms: int) -> None:
        """Act on the candle opened at ``candle_ms``: market time is its close."""
        assert self.prices is not None, "a replay's market"
        self.prices.at_ms = candle_ms + self.step

    def replay_ended(self) -> ReplayEndedError | None:
        """The error that ends the replay once its schedule has passed the last stored candle
        and the bot has acted on it; None while a candle is to come."""
        assert self.feed is not None, "a replay's market"
        next_open = self.now_ms()
        if self.feed.closed_until(self.clock()) < next_open:
            return None  # the next candle has not closed on the schedule yet
        exchange, symbol = self.bot.exchange_account.exchange, self.bot.symbol
        if replay_candle_from(exchange, symbol, self.bot.timeframe, next_open) is not None:
            return None
        return replay_ended_error(exchange, symbol, self.bot.timeframe, next_open)

    def closed_candles(self, newest: int) -> pd.DataFrame:
        """The last ``BOT_CANDLE_WINDOW`` candles up to ``newest`` (missing live ones fetched),
        shared read-only between the bots of one market in this process."""
        return candle_window(
            exchange=self.bot.exchange_account.exchange, symbol=self.bot.symbol,
            timeframe=self.bot.timeframe, size=settings.BOT_CANDLE_WINDOW, newest=newest,
            live_now_ms=self.now_ms() if self.feed is None else None,
        )  # fmt: skip


def ticker_price(ticker: dict[str, Any], side: str) -> Decimal:
    """The ``bid`` or ``ask`` of a ccxt ticker: the exchange's exact string when its raw answer
    has one, else ccxt's number (or the last price)."""
    info = ticker.get("info")
    if isinstance(info, dict) and isinstance(info.get(side), str):
        return Decimal(info[side])
    value = ticker.get(side) or ticker.get("last") or ticker.get("close")
    return Decimal(str(value))
