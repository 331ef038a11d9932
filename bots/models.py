from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.db import models

from accounts.models import ExchangeAccount
from bots.timeframes import TIMEFRAMES


def new_order_id() -> str:
    return str(uuid.uuid4())


PRICE: dict[str, Any] = {"max_digits": 28, "decimal_places": 12}


class Candle(models.Model):
    """One closed OHLCV candle, keyed by its open time (epoch ms, UTC) as ccxt gives it."""

    exchange = models.CharField(max_length=32)
    symbol = models.CharField(max_length=40)
    timeframe = models.CharField(max_length=4, choices=[(t, t) for t in TIMEFRAMES])
    open_time = models.BigIntegerField(help_text="Candle open time, epoch milliseconds UTC")
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(**PRICE)

    class Meta:
        db_table = "candles"
        constraints: ClassVar[list[Any]] = [
            # Also the index for range reads: (exchange, symbol, timeframe) then open_time.
            models.UniqueConstraint(
                fields=("exchange", "symbol", "timeframe", "open_time"), name="candle_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exchange} {self.symbol} {self.timeframe} {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def opened_at(self) -> datetime:
        return datetime.fromtimestamp(self.open_time / 1000, tz=UTC)


class MarketSnapshot(models.Model):
    """The exchange's market metadata (precision, limits, fees) as ccxt loaded it."""

    exchange = models.CharField(max_length=32)
    markets = models.JSONField()
    fetched_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "market_snapshots"

    def __str__(self) -> str:
        return f"{self.exchange} markets of {self.fetched_at:%Y-%m-%d %H:%M}"


class PaperBalance(models.Model):
    """One currency of a paper account. ``used`` is what open orders have reserved."""

    account = models.ForeignKey(
        ExchangeAccount, on_delete=models.CASCADE, related_name="paper_balances"
    )
    currency = models.CharField(max_length=20)
    free = models.DecimalField(**PRICE, default=0)
    used = models.DecimalField(**PRICE, default=0)

    class Meta:
        db_table = "paper_balances"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("account", "currency"), name="paper_balance_currency"),
            models.CheckConstraint(
                condition=models.Q(free__gte=0) & models.Q(used__gte=0),
                name="paper_balance_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.currency} {self.free}+{self.used}"

    @property
    def total(self) -> Any:
        return self.free + self.used


class PaperOrder(models.Model):
    """An order on the paper exchange; its fill is recorded on the row (one fill per order)."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        CANCELED = "canceled"

    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class Type(models.TextChoices):
        MARKET = "market"
        LIMIT = "limit"

    account = models.ForeignKey(
        ExchangeAccount, on_delete=models.CASCADE, related_name="paper_orders"
    )
    order_id = models.CharField(max_length=40, unique=True, default=new_order_id)
    # NULL, not "": orders without one must not collide in the unique constraint.
    client_order_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    symbol = models.CharField(max_length=40)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=6, choices=Type.choices)
    price = models.DecimalField(**PRICE, null=True, blank=True)
    amount = models.DecimalField(**PRICE)
    filled = models.DecimalField(**PRICE, default=0)
    average = models.DecimalField(**PRICE, null=True, blank=True)
    cost = models.DecimalField(**PRICE, default=0)
    fee_cost = models.DecimalField(**PRICE, default=0)
    fee_currency = models.CharField(max_length=20, blank=True)
    reserved = models.DecimalField(
        **PRICE, default=0, help_text="Funds held in 'used' while the order is open"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    timestamp = models.BigIntegerField(help_text="Placement time, epoch ms (market time)")
    last_trade_timestamp = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "paper_orders"
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("account", "status", "symbol"), name="paper_order_open"),
        ]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=("account", "client_order_id"),
                condition=models.Q(client_order_id__isnull=False),
                name="paper_order_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.amount} {self.symbol} ({self.status})"
