"""The market a bot trades on: its exchange, its clock and its closed candles.

A replay bot runs on market time (``bots.replay.ReplayFeed``) and trades on the paper exchange
at the replay's prices; a live bot runs on the wall clock and reads its candles from the real
exchange (stored as they arrive, so every bot on one market shares them).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import pandas as pd
from django.conf import settings

from accounts.models import ExchangeAccount
from bots.exchanges.base import Exchange
from bots.exchanges.ccxt_exchange import CcxtExchange
from bots.exchanges.factory import exchange_for_account
from bots.exchanges.paper import PaperExchange
from bots.exchanges.prices import ReplayPrices
from bots.market_data import candles_fetch_from_exchange
from bots.models import Bot
from bots.replay import ReplayFeed
from bots.selectors import candles_frame
from bots.timeframes import timeframe_ms

# Candle windows by (exchange, symbol, timeframe, first open, newest open), newest last.
_windows: OrderedDict[tuple[str, str, str, int, int], pd.DataFrame] = OrderedDict()
WINDOW_CACHE_SIZE = 64


def forget_candle_windows() -> None:
    """Drop the cached windows (tests that rewrite stored candles)."""
    _windows.clear()


@cache
def public_exchange(exchange_id: str) -> CcxtExchange:
    """One keyless ccxt client per exchange and process, for public market data."""
    return CcxtExchange.public(exchange_id)


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
        """The last ``BOT_CANDLE_WINDOW`` candles up to ``newest`` (missing live ones fetched).

        Shared read-only between the bots of one market in this process: a closed candle never
        changes, so a window that reaches ``newest`` is read from the database once.
        """
        start = newest - (settings.BOT_CANDLE_WINDOW - 1) * self.step
        key = (self.bot.exchange_account.exchange, self.bot.symbol, self.bot.timeframe,
               start, newest)  # fmt: skip
        cached = _windows.get(key)
        if cached is not None:
            _windows.move_to_end(key)
            return cached
        exchange_id, symbol, timeframe = key[:3]
        if self.feed is None:
            candles_fetch_from_exchange(
                exchange=public_exchange(exchange_id), symbol=symbol, timeframe=timeframe,
                since_ms=start, until_ms=newest + self.step, now_ms=self.now_ms(),
            )  # fmt: skip
        frame = candles_frame(
            exchange=exchange_id, symbol=symbol, timeframe=timeframe,
            start_ms=start, end_ms=newest + 1,
        )  # fmt: skip
        if not frame.empty and int(frame["open_time"].iloc[-1]) == newest:
            _windows[key] = frame  # complete up to newest: it cannot change any more
            if len(_windows) > WINDOW_CACHE_SIZE:
                _windows.popitem(last=False)
        return frame
