"""What bots and backtests share: exchange accounts, candles, the exchanges' market metadata,
and the paper exchange's ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from accounts.fields import EncryptedSecretField
from markets.timeframes import TIMEFRAMES


class ExchangeAccount(models.Model):
    """A trader's connection to an exchange: paper (simulated) or live (real keys, encrypted)."""

    class Exchange(models.TextChoices):
        BITGET = "bitget", "Bitget"

    class Mode(models.TextChoices):
        PAPER = "paper", "Paper"
        LIVE = "live", "Live"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exchange_accounts"
    )
    exchange = models.CharField(max_length=32, choices=Exchange.choices)
    label = models.CharField(max_length=100)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.PAPER)
    api_key = EncryptedSecretField(blank=True, default="")
    api_secret = EncryptedSecretField(blank=True, default="")
    passphrase = EncryptedSecretField(blank=True, default="")
    # Paper mode only: the fill model's slippage, and fee overrides (default: the market's fees).
    paper_slippage_bps = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        default=Decimal("5"),
        help_text="Paper market orders fill this many basis points worse than the reference price",
    )
    paper_maker_fee = models.DecimalField(max_digits=8, decimal_places=6, null=True, blank=True)
    paper_taker_fee = models.DecimalField(max_digits=8, decimal_places=6, null=True, blank=True)
    # Live mode only: when the exchange last accepted the keys (a balance fetch). NULL on a live
    # account = unverified (the exchange could not be reached): checked again before a bot starts.
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_error = models.CharField(
        max_length=300, blank=True, default="", help_text="Why the keys could not be verified"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "exchange_accounts"
        ordering = ("label",)
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=("user", "label"), name="exchange_account_label_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.exchange}, {self.mode})"

    @property
    def api_key_masked(self) -> str:
        return self.api_key.masked

    @property
    def is_live(self) -> bool:
        return self.mode == ExchangeAccount.Mode.LIVE

    @property
    def verification(self) -> str:
        """``verified`` or ``unverified`` (a live account's keys), ``not_needed`` (paper)."""
        if not self.is_live:
            return "not_needed"
        return "verified" if self.verified_at is not None else "unverified"


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


class MarkCandle(models.Model):
    """One closed mark-price candle of a perpetual swap (the price of liquidation, unrealised PnL
    and funding notionals), keyed like ``Candle``. ``volume`` is NULL when the source has none
    (mark prices are not traded): never read it as zero."""

    exchange = models.CharField(max_length=32)
    symbol = models.CharField(max_length=40)
    timeframe = models.CharField(max_length=4, help_text="1m ... 1d, or 8h (the funding interval)")
    open_time = models.BigIntegerField(help_text="Candle open time, epoch milliseconds UTC")
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(**PRICE, null=True, blank=True)

    class Meta:
        db_table = "mark_candles"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=("exchange", "symbol", "timeframe", "open_time"), name="mark_candle_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exchange} {self.symbol} mark {self.timeframe} {self.open_time}"


class FundingRate(models.Model):
    """The funding rate of one interval of a perpetual swap, as a fraction (0.0001 = 0.01 %).
    Positive: longs pay shorts (position notional at the mark price x rate)."""

    exchange = models.CharField(max_length=32)
    symbol = models.CharField(max_length=40)
    funding_time = models.BigIntegerField(
        help_text="Funding time, epoch ms UTC, floored to the 8 h interval"
    )
    rate = models.DecimalField(**PRICE)

    class Meta:
        db_table = "funding_rates"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=("exchange", "symbol", "funding_time"), name="funding_rate_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exchange} {self.symbol} funding {self.funding_time}: {self.rate}"


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


class OrderSide(models.TextChoices):
    """The side of an order, on any exchange (ccxt's words)."""

    BUY = "buy"
    SELL = "sell"


class OrderType(models.TextChoices):
    """The type of an order, on any exchange (ccxt's words)."""

    MARKET = "market"
    LIMIT = "limit"
    # Reduce-only trigger orders (a bot's stop-loss / take-profit): they rest unfilled until the
    # price reaches their trigger price (``price`` on the row), then fill as market orders.
    STOP_MARKET = "stop_market"
    TAKE_PROFIT_MARKET = "take_profit_market"


TRIGGER_ORDER_TYPES = (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)


class PaperOrder(models.Model):
    """An order on the paper exchange; its fill is recorded on the row (one fill per order)."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        CANCELED = "canceled"

    class Reason(models.TextChoices):
        CALLER = "", "placed by the caller"
        LIQUIDATION = "liquidation"

    Side = OrderSide
    Type = OrderType

    account = models.ForeignKey(
        ExchangeAccount, on_delete=models.CASCADE, related_name="paper_orders"
    )
    order_id = models.CharField(max_length=40, unique=True, default=new_order_id)
    # NULL, not "": orders without one must not collide in the unique constraint.
    client_order_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    symbol = models.CharField(max_length=40)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=20, choices=Type.choices)
    price = models.DecimalField(
        **PRICE, null=True, blank=True, help_text="Limit price; a trigger order's trigger price"
    )
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
    # Perpetual swaps: an order that may only reduce the position, and why the paper exchange
    # placed an order itself ("liquidation"; "" for a caller's order).
    reduce_only = models.BooleanField(default=False)
    reason = models.CharField(max_length=12, choices=Reason.choices, blank=True, default="")
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


class PaperPosition(models.Model):
    """A paper account's USDT-margined perpetual-swap position in one symbol (one-way mode,
    isolated margin), and the symbol's settings (leverage, margin mode) even while flat.

    ``margin`` is held out of the settle currency's free balance (counted in its ``used``);
    ``funding`` and ``realized_pnl`` add up over the position's life, from the order that opened
    it from flat to the one that closed it (kept on the flat row until the next opening).
    """

    class Side(models.TextChoices):
        LONG = "long"
        SHORT = "short"
        FLAT = "flat"

    account = models.ForeignKey(
        ExchangeAccount, on_delete=models.CASCADE, related_name="paper_positions"
    )
    symbol = models.CharField(max_length=40)
    side = models.CharField(max_length=5, choices=Side.choices, default=Side.FLAT)
    qty = models.DecimalField(**PRICE, default=0, help_text="Size in contracts, 0 when flat")
    entry_price = models.DecimalField(**PRICE, null=True, blank=True)
    leverage = models.PositiveSmallIntegerField(default=1)
    margin_mode = models.CharField(max_length=8, default="isolated")
    margin = models.DecimalField(**PRICE, default=0, help_text="Initial margin held, quote")
    funding = models.DecimalField(
        **PRICE, default=0, help_text="Funding received (+) or paid (-) by this position, quote"
    )
    realized_pnl = models.DecimalField(**PRICE, default=0)
    liquidation_price = models.DecimalField(
        **PRICE, null=True, blank=True, help_text="NULL: never liquidated (a long at leverage 1)"
    )
    opened_at_ms = models.BigIntegerField(
        null=True, blank=True, help_text="Market time the position opened from flat, epoch ms"
    )
    last_funding_ms = models.BigIntegerField(
        null=True, blank=True, help_text="Funding is settled up to here (restart-safe)"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "paper_positions"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("account", "symbol"), name="paper_position_symbol"),
            models.CheckConstraint(
                condition=models.Q(qty__gte=0) & models.Q(margin__gte=0),
                name="paper_position_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.side} {self.qty} @ {self.entry_price}"


class AccountEquity(models.Model):
    """A paper account's equity over time, in its quote currency (USDT): its balances valued
    at the last price known, once a minute on the wall clock (``bots.services.equity``, which
    knows the bots' marks). A live account's balances are on the exchange, which is not asked
    for them once a minute: it has no rows. Thinned with age like a bot's curve (``equity``)."""

    account = models.ForeignKey(ExchangeAccount, on_delete=models.CASCADE, related_name="equity")
    time = models.DateTimeField()
    equity = models.DecimalField(**PRICE)

    class Meta:
        db_table = "account_equity"
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("account", "time"), name="account_equity_time"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.time:%Y-%m-%d %H:%M} {self.equity}"
