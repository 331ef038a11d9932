"""The market a bot trades on: its exchange, its clock and its closed candles.

A replay bot runs on market time (``markets.replay.ReplayFeed``) and trades on the paper exchange
at the replay's prices; a live bot runs on the wall clock and reads its candles from the real
exchange (stored as they arrive, so every bot on one market shares them).
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
from markets.exchanges.prices import ReplayPrices
from markets.models import ExchangeAccount
from markets.replay import ReplayFeed
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


@dataclass
class BotMarket:
    bot: Bot
    exchange: Exchange
    feed: ReplayFeed | None
    clock: Callable[[], float]

    @classmethod
    def of(cls, bot: Bot, *, clock: Callable[[], float] = time.time) -> BotMarket:
        if bot.data_source == Bot.DataSource.REPLAY:
            feed = replay_feed(bot)
            prices = ReplayPrices(bot.exchange_account.exchange, feed, clock)
            return cls(bot, PaperExchange(bot.exchange_account, prices=prices), feed, clock)
        return cls(bot, exchange_for_account(bot.exchange_account), None, clock)

    @property
    def step(self) -> int:
        return timeframe_ms(self.bot.timeframe)

    @property
    def is_paper(self) -> bool:
        return self.bot.exchange_account.mode == ExchangeAccount.Mode.PAPER

    def now_ms(self) -> int:
        """Market time: the replay's, or the wall clock's."""
        if self.feed is not None:
            return self.feed.market_time(self.clock())
        return int(self.clock() * 1000)

    def newest_closed(self) -> int:
        """Open time of the newest candle that has closed."""
        return self.now_ms() // self.step * self.step - self.step

    def next_tick_at(self) -> datetime:
        """When the next candle closes (plus the exchange's publishing delay, live)."""
        now = self.clock()
        if self.feed is not None:
            moment = now + self.feed.seconds_until_next_candle(now)
        else:
            next_close_ms = (int(now * 1000) // self.step + 1) * self.step
            moment = next_close_ms / 1000 + settings.BOT_LIVE_CLOSE_DELAY_SECONDS
        return datetime.fromtimestamp(moment, tz=UTC)

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
