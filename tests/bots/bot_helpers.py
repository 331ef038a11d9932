"""Helpers for bot tests: real candles, a funded paper account, a bot, and a clock to drive it.

A replay bot's market time follows the wall clock; tests hand the tick a ``ManualClock`` instead
and move it on one candle at a time, so a replay of hundreds of candles runs in seconds.

``Scripted`` is a strategy whose signal the test sets (``Scripted.target``), so a test decides
when the bot wants to be long; ``Exploding`` raises, as a buggy strategy would. Both exist only
inside ``strategies_for_tests()``, which activates a registry holding them and restores the previous
one afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from django.utils import timezone

from accounts.models import User
from bots import services
from bots.models import Bot, Position
from bots.services import BotConfig
from bots.services.dispatch import bots_due
from markets import services as market_services
from markets.candle_csv import read_candle_file
from markets.candles import SAMPLE_PATH, SAMPLE_TIMEFRAME
from markets.models import Candle, ExchangeAccount, PaperBalance
from strategies import registry as strategy_registry
from strategies.base import Strategy
from strategies.services import strategy_catalogue_sync

EXCHANGE, SYMBOL, TIMEFRAME = "bitget", "BTC/USDT", SAMPLE_TIMEFRAME
STEP_MS = 5 * 60 * 1000
# The stretch of the sample the admin and page tests store (``rows`` in ``conftest``): a bot
# ticks through a few hundred of its candles.
FIRST, COUNT = 2000, 1500


@functools.cache
def sample_rows() -> list[Any]:
    return read_candle_file(SAMPLE_PATH, timeframe=TIMEFRAME).rows


def store_candles(first: int, count: int) -> list[Any]:
    """Store rows ``first .. first + count`` of the shipped sample; returns them."""
    rows = sample_rows()[first : first + count]
    Candle.objects.bulk_create(
        Candle(exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, **row._asdict())
        for row in rows
    )
    return rows


def as_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class ManualClock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ReplayBot:
    """A replay bot at ``speed`` candles a minute, and the clock that drives its ticks."""

    bot: Bot
    clock: ManualClock

    @property
    def seconds_per_candle(self) -> float:
        assert self.bot.replay_speed
        return 60.0 / self.bot.replay_speed

    def start(self) -> Bot:
        self.bot = services.bot_start(bot=self.bot, clock=self.clock)
        return self.bot

    def tick(self) -> services.TickResult:
        return services.bot_tick(bot_id=self.bot.pk, clock=self.clock)

    def next_candle(self) -> services.TickResult:
        """Move market time on one candle, then tick."""
        self.clock.advance(self.seconds_per_candle)
        return self.tick()

    def refresh(self) -> Bot:
        self.bot.refresh_from_db()
        return self.bot


def paper_account(user: User, usdt: str = "10000", **fields: Any) -> ExchangeAccount:
    account = market_services.exchange_account_open(
        user=user, exchange=EXCHANGE, label=fields.pop("label", "Paper"), mode="paper",
        paper_balance={"USDT": Decimal(usdt)},
    )  # fmt: skip
    if fields:
        ExchangeAccount.objects.filter(pk=account.pk).update(**fields)
        account.refresh_from_db()
    return account


def replay_bot(
    user: User,
    account: ExchangeAccount,
    *,
    start_ms: int,
    strategy: str = "ma_cross",
    params: dict[str, Any] | None = None,
    speed: float = 60.0,
    **risk: Any,
) -> ReplayBot:
    config = BotConfig(
        name=risk.pop("name", f"{strategy} replay"), exchange_account=account, symbol=SYMBOL,
        timeframe=TIMEFRAME, strategy=strategy,
        params=params if params is not None else {"fast": 5, "slow": 20},
        data_source=Bot.DataSource.REPLAY, replay_start=as_datetime(start_ms),
        replay_speed=speed, **risk,
    )  # fmt: skip
    return ReplayBot(services.bot_create(user=user, config=config), ManualClock())


def scripted_bot(user: User, account: ExchangeAccount, *, start_ms: int, **risk: Any) -> ReplayBot:
    """A replay bot on the ``Scripted`` strategy (its signal is ``Scripted.target``)."""
    risk.setdefault("name", "scripted replay")
    return replay_bot(user, account, start_ms=start_ms, strategy=Scripted.key, params={}, **risk)


def due_ids(now: datetime | None = None) -> set[int]:
    """The bots the dispatcher would send a tick for at ``now``."""
    return set(bots_due(now).values_list("pk", flat=True))


def paper_free(account: ExchangeAccount, currency: str) -> Decimal:
    row = PaperBalance.objects.filter(account=account, currency=currency).first()
    return row.free if row is not None else Decimal(0)


def paper_used(account: ExchangeAccount, currency: str) -> Decimal:
    row = PaperBalance.objects.filter(account=account, currency=currency).first()
    return row.used if row is not None else Decimal(0)


# --- strategies the tests control ---------------------------------------------------------------


class Scripted(Strategy):
    """Flat on every candle but the newest, which gets ``Scripted.target`` (the tick reads only
    the newest)."""

    key = "test_scripted"
    name = "Scripted (tests)"
    target: ClassVar[int] = 0

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        values = np.zeros(len(candles), dtype=np.int8)
        if len(values):
            values[-1] = type(self).target
        return pd.Series(values, index=candles.index)


class ExplodingStrategyError(RuntimeError):
    pass


class Exploding(Strategy):
    key = "test_exploding"
    name = "Exploding (tests)"

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        raise ExplodingStrategyError(f"indicator blew up on {len(candles)} candles")


@contextlib.contextmanager
def strategies_for_tests() -> Iterator[None]:
    """The built-in strategies plus ``Scripted`` and ``Exploding``, catalogued; restored after."""
    previous = strategy_registry.active()
    strategy_registry.activate(strategy_registry.Registry([*previous, Scripted, Exploding]))
    Scripted.target = 0
    try:
        strategy_catalogue_sync()
        yield
    finally:
        Scripted.target = 0
        strategy_registry.activate(previous)


# --- bots in a given state, for the admin, pages and dashboard tests -----------------------------

SPEED = 600.0  # candles a minute: the real clock moves ten candles a second past the start
API_KEY, API_SECRET, PASSPHRASE = "key-AAAA1111bbbb", "secret-ZZZZ9999yyyy", "phrase-QQQQ7777"


def running_bot(user: Any, account: ExchangeAccount, rows: list[Any], name: str) -> ReplayBot:
    runner = replay_bot(user, account, start_ms=rows[0].open_time, speed=SPEED, name=name)
    runner.clock.now = time.time()
    runner.start()
    return runner


def holding_bot(user: Any, account: ExchangeAccount, rows: list[Any], name: str) -> ReplayBot:
    """A running bot that has closed a trade (a realised PnL) and holds a position again."""
    runner = running_bot(user, account, rows, name)
    for _ in range(400):
        runner.next_candle()
        position = Position.objects.get(bot=runner.bot)
        if position.qty > 0 and runner.bot.trades.filter(side="sell").exists():
            break
    assert runner.refresh().status == Bot.Status.RUNNING, runner.bot.last_error
    assert Position.objects.get(bot=runner.bot).qty > 0, "the stretch must leave a position"
    return runner


def live_bot(user: Any) -> Bot:
    """A stopped bot on a live account: its account holds real-looking secrets (saved as the
    exchange accepted them: written directly, so that no key check goes out)."""
    account = ExchangeAccount.objects.create(
        user=user, exchange="bitget", label="Live", mode="live", api_key=API_KEY,
        api_secret=API_SECRET, passphrase=PASSPHRASE, verified_at=timezone.now(),
    )  # fmt: skip
    config = services.BotConfig(
        name="live bot", exchange_account=account, symbol=SYMBOL, timeframe=TIMEFRAME,
        strategy="ma_cross", params={"fast": 5, "slow": 20},
    )  # fmt: skip
    return services.bot_create(user=user, config=config)


def statuses(*bots: Bot) -> list[str]:
    return [Bot.objects.get(pk=bot.pk).status for bot in bots]
