"""The demo trader's bot (``manage.py seed_demo``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

from django.db import transaction

from accounts.models import User
from bots.models import Bot
from bots.services.lifecycle import BotConfig, bot_create, bot_start
from markets.candles import SAMPLE_TIMEFRAME
from markets.models import Candle, ExchangeAccount
from markets.services import DEMO_PAPER_LABEL
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

DEMO_BOT_NAME = "Demo MA cross (replay)"
DEMO_BOT_MARKET = {"exchange": "bitget", "symbol": "BTC/USDT", "timeframe": SAMPLE_TIMEFRAME}
DEMO_BOT_REPLAY_OFFSET = 500  # candles into the sample: the slow average has history to warm up
DEMO_BOT_SPEED = 30.0  # candles a minute: MA 5/20 trades within a couple of minutes


def demo_bot_seed(*, trader: User) -> Bot:
    """The demo trader's paper bot: MA cross 5/20 on the replayed BTC/USDT 5m sample, started.

    Idempotent: an existing demo bot is returned as it is (a trader who stopped it keeps it
    stopped). Needs :func:`demo_market_seed` first (the candles and the paper account).
    """
    existing = Bot.objects.filter(user=trader, name=DEMO_BOT_NAME).first()
    if existing is not None:
        return existing
    account = ExchangeAccount.objects.get(user=trader, label=DEMO_PAPER_LABEL)
    times = Candle.objects.filter(**DEMO_BOT_MARKET).order_by("open_time")
    start_ms = times.values_list("open_time", flat=True)[DEMO_BOT_REPLAY_OFFSET]
    config = BotConfig(
        name=DEMO_BOT_NAME, exchange_account=account, symbol=DEMO_BOT_MARKET["symbol"],
        timeframe=DEMO_BOT_MARKET["timeframe"], strategy="ma_cross",
        params={"fast": 5, "slow": 20}, data_source=Bot.DataSource.REPLAY,
        replay_start=datetime.fromtimestamp(start_ms / 1000, tz=UTC), replay_speed=DEMO_BOT_SPEED,
        order_size_kind=Bot.OrderSizeKind.FRACTION, order_size=Decimal(1),
    )  # fmt: skip
    with transaction.atomic():  # a seed that fails to start leaves no stopped demo bot behind
        bot = bot_start(bot=bot_create(user=trader, config=config))
    logger.info("demo.bot_seeded", extra=context(user_id=trader.pk, bot_id=bot.pk))
    return bot
