"""Writes and business operations of the bots app. Keyword-only, typed, transactional."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts import services as account_services
from accounts.models import ExchangeAccount, User
from bots.exchanges import paper
from bots.exchanges.factory import exchange_for_account
from bots.exchanges.markets import get_catalog
from bots.market_data import SAMPLE_TIMEFRAME, candles_load_sample
from bots.models import Bot, Candle
from bots.services.lifecycle import BotConfig, bot_create, bot_start
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

DEFAULT_PAPER_BALANCE = {"USDT": Decimal(10_000)}


def exchange_account_open(
    *,
    user: User,
    exchange: str,
    label: str,
    mode: str,
    api_key: str = "",
    api_secret: str = "",
    passphrase: str = "",
    paper_balance: dict[str, Decimal] | None = None,
) -> ExchangeAccount:
    """Create an exchange account; a paper one is funded (default 10,000 USDT) in the same
    transaction, so an account never exists half set up."""
    if mode != ExchangeAccount.Mode.PAPER and paper_balance:
        raise AppError(
            "validation_error",
            "Only a paper account takes a starting balance.",
            400,
            details={"paper_balance": ["Only a paper account takes a starting balance."]},
        )
    with transaction.atomic():
        account = account_services.exchange_account_create(
            user=user, exchange=exchange, label=label, mode=mode,
            api_key=api_key, api_secret=api_secret, passphrase=passphrase,
        )  # fmt: skip
        if mode == ExchangeAccount.Mode.PAPER:
            try:
                paper.fund(account, paper_balance or DEFAULT_PAPER_BALANCE)
            except AppError as error:
                # Rolls the account back with it, and names the field that was wrong.
                raise AppError(
                    error.code,
                    error.message,
                    error.status,
                    details={"paper_balance": [error.message]},
                ) from None
    return account


def exchange_account_balances(*, account: ExchangeAccount) -> dict[str, dict[str, str]]:
    """``{currency: {"free", "used", "total"}}`` as decimal strings, from the account's exchange.

    Currencies with nothing in them are left out.
    """
    balance = exchange_for_account(account).fetch_balance()
    totals: dict[str, Any] = balance.get("total") or {}
    result = {}
    for currency in sorted(totals):
        entry = balance.get(currency) or {}
        if not any(entry.get(part) for part in ("free", "used", "total")):
            continue
        result[currency] = {
            part: _decimal_text(entry.get(part)) for part in ("free", "used", "total")
        }
    logger.info(
        "exchange_account.balance",
        extra=context(user_id=account.user_id, exchange_account_id=account.pk, mode=account.mode),
    )
    return result


def _decimal_text(value: Any) -> str:
    if value is None:
        return "0"
    return format(Decimal(str(value)).normalize(), "f")


def check_symbol(*, exchange: str, symbol: str) -> None:
    """Raise ``unknown_symbol`` (400) unless the exchange lists the market."""
    get_catalog(exchange).market(symbol)


DEMO_PAPER_LABEL = "Paper (Bitget rules)"


def demo_market_seed(*, trader: User) -> dict[str, Any]:
    """Load the shipped BTC/USDT sample (5m and resampled) and give the demo trader a funded
    paper account. Idempotent: a second run creates nothing."""
    summary = candles_load_sample()
    account = ExchangeAccount.objects.filter(user=trader, label=DEMO_PAPER_LABEL).first()
    if account is None:
        account = exchange_account_open(
            user=trader, exchange="bitget", label=DEMO_PAPER_LABEL, mode="paper"
        )
    logger.info("demo.seeded", extra=context(user_id=trader.pk, exchange_account_id=account.pk))
    return {"candles": summary.total, "created": summary.created, "account": account.label}


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
