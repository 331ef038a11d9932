from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from markets.models import PRICE, TRIGGER_ORDER_TYPES, ExchangeAccount, OrderSide, OrderType
from markets.timeframes import TIMEFRAMES

MONEY: dict[str, Any] = PRICE
PERCENT: dict[str, Any] = {"max_digits": 7, "decimal_places": 3}


class MarginMode(models.TextChoices):
    """How a perp position is margined: isolated, each on its own (cross: not yet)."""

    ISOLATED = "isolated"


class Bot(models.Model):
    """A trader's strategy running on one market of one exchange account.

    The bot's state lives here, not in any process: a tick reads it, claims the bot with a lease
    (``tick_lease_until``), trades, and writes it back. ``last_candle_ms`` is the open time of the
    newest closed candle the bot has acted on, so a tick for a candle already handled does nothing.
    """

    class Status(models.TextChoices):
        STOPPED = "stopped"
        RUNNING = "running"
        STOPPING = "stopping"
        ERROR = "error"

    class DataSource(models.TextChoices):
        LIVE = "live"
        REPLAY = "replay"

    class OrderSizeKind(models.TextChoices):
        FRACTION = "fraction", "Fraction of free quote balance"
        QUOTE = "quote", "Quote amount"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bots"
    )
    exchange_account = models.ForeignKey(
        ExchangeAccount, on_delete=models.PROTECT, related_name="bots"
    )
    name = models.CharField(max_length=100)
    symbol = models.CharField(max_length=40)
    timeframe = models.CharField(max_length=4, choices=[(t, t) for t in TIMEFRAMES])
    strategy = models.ForeignKey(
        "strategies.Strategy", on_delete=models.PROTECT, related_name="+", to_field="key"
    )
    params = models.JSONField(default=dict, help_text="Validated strategy parameters")
    data_source = models.CharField(
        max_length=8, choices=DataSource.choices, default=DataSource.LIVE
    )
    replay_start_ms = models.BigIntegerField(
        null=True, blank=True, help_text="Replay: market time the replay starts at, epoch ms"
    )
    replay_speed = models.FloatField(null=True, blank=True, help_text="Replay: candles a minute")
    replay_started_at = models.FloatField(
        null=True, blank=True, help_text="Replay: wall clock (epoch s) of the last start"
    )
    replay_resume_ms = models.BigIntegerField(
        null=True, blank=True, help_text="Replay: market time at the last start, epoch ms"
    )
    order_size_kind = models.CharField(
        max_length=8, choices=OrderSizeKind.choices, default=OrderSizeKind.FRACTION
    )
    order_size = models.DecimalField(
        **MONEY, default=1, help_text="A fraction (0 < f <= 1) or a quote amount"
    )
    max_position = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Largest position value, in quote currency"
    )
    stop_loss_pct = models.DecimalField(**PERCENT, null=True, blank=True)
    take_profit_pct = models.DecimalField(**PERCENT, null=True, blank=True)
    leverage = models.PositiveSmallIntegerField(
        default=1, help_text="Perpetual swaps: 1 to the market's (and the user's) maximum"
    )
    margin_mode = models.CharField(
        max_length=8, choices=MarginMode.choices, default=MarginMode.ISOLATED
    )
    liquidation_buffer_pct = models.DecimalField(
        **PERCENT, null=True, blank=True,
        help_text="Perpetual swaps: refuse an entry liquidated within this percent of its price",
    )  # fmt: skip
    daily_loss_limit = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="Stop (and flatten) the bot when today's PnL falls to minus this, in quote",
    )  # fmt: skip
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.STOPPED)
    stop_flatten = models.BooleanField(
        default=False, help_text="While stopping: also close the position"
    )
    last_error = models.TextField(blank=True, default="")
    last_tick_at = models.DateTimeField(null=True, blank=True)
    last_candle_ms = models.BigIntegerField(null=True, blank=True)
    next_tick_at = models.DateTimeField(null=True, blank=True)
    tick_lease_until = models.DateTimeField(null=True, blank=True)
    tick_lease_token = models.CharField(max_length=36, blank=True, default="")
    error_streak = models.PositiveIntegerField(
        default=0, help_text="Transient exchange failures in a row (backoff)"
    )
    degraded_since = models.DateTimeField(
        null=True, blank=True,
        help_text="Set after BOT_DEGRADED_AFTER_FAILURES failed ticks in a row; cleared by success",
    )  # fmt: skip
    degraded_reason = models.TextField(blank=True, default="", help_text="The last failure")
    stop_requested_by = models.CharField(
        max_length=200, blank=True, default="",
        help_text="Who asked for the stop in progress (the trader, staff member ..., the system)",
    )  # fmt: skip
    risk_exit_target = models.SmallIntegerField(
        null=True, blank=True,
        help_text="The signal a stop-loss/take-profit exit left; re-entry waits for a new one",
    )  # fmt: skip
    signal_token_hash = models.CharField(
        max_length=64, unique=True, null=True, blank=True,
        help_text="SHA-256 of the signal webhook's token (shown once); null: signals disabled",
    )  # fmt: skip
    signal_allowed_ips = models.JSONField(
        default=list, blank=True,
        help_text="Networks the signal webhook accepts (CIDR strings); empty: any address",
    )  # fmt: skip
    signal_target = models.SmallIntegerField(
        null=True, blank=True, help_text="The position the last signal asked for (-1, 0, +1)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "bots"
        ordering = ("-created_at",)
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("status", "next_tick_at"), name="bot_due"),
        ]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("user", "name"), name="bot_name_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.symbol} {self.timeframe}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (Bot.Status.RUNNING, Bot.Status.STOPPING)

    @property
    def is_degraded(self) -> bool:
        return self.status == Bot.Status.RUNNING and self.degraded_since is not None

    @property
    def state(self) -> str:
        """What the trader sees: the status, except a running bot whose exchange keeps failing
        is ``degraded``."""
        return "degraded" if self.is_degraded else self.status

    @property
    def state_label(self) -> str:
        return self.state.capitalize()

    @property
    def health(self) -> str:
        return "degraded" if self.is_degraded else "ok"

    @property
    def is_perp(self) -> bool:
        """Trades a perpetual swap: ccxt writes a contract market with its settle currency
        (``BTC/USDT:USDT``)."""
        return ":" in self.symbol

    @property
    def signals_enabled(self) -> bool:
        """The signal webhook takes signals: a token has been made (and not revoked)."""
        return self.signal_token_hash is not None

    @property
    def is_live_money(self) -> bool:
        """Trades real money: a live account (a replay always trades on paper)."""
        return self.exchange_account.is_live


class Order(models.Model):
    """An order the bot decided on. It is written (``pending``) BEFORE it is sent, under a
    deterministic ``client_order_id``, so a crash between sending and recording is found and
    reconciled with the exchange instead of sent again."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (decided, not yet confirmed by the exchange)"
        OPEN = "open"
        CLOSED = "closed"
        CANCELED = "canceled"
        REJECTED = "rejected"

    OPEN_STATUSES = (Status.PENDING, Status.OPEN)

    Side = OrderSide
    Type = OrderType

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="orders")
    client_order_id = models.CharField(max_length=64, unique=True)
    exchange_order_id = models.CharField(max_length=64, blank=True, default="")
    symbol = models.CharField(max_length=40)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=20, choices=Type.choices)
    price = models.DecimalField(
        **PRICE, null=True, blank=True, help_text="Limit price; a trigger order's trigger price"
    )
    qty = models.DecimalField(**PRICE)
    filled_qty = models.DecimalField(**PRICE, default=0)
    average_price = models.DecimalField(**PRICE, null=True, blank=True)
    fee = models.DecimalField(**PRICE, default=0)
    fee_currency = models.CharField(max_length=20, blank=True, default="")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=20, help_text="signal, stop_loss, take_profit, stop ...")
    error = models.TextField(blank=True, default="")
    candle_ms = models.BigIntegerField(help_text="Open time of the candle that decided it")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "orders"
        ordering = ("-created_at", "-id")
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("bot", "status"), name="order_bot_status"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} {self.symbol} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in Order.OPEN_STATUSES

    @property
    def is_trigger(self) -> bool:
        """A stop-loss / take-profit trigger order (read and cancelled as one on the exchange)."""
        return self.order_type in TRIGGER_ORDER_TYPES


class Signal(models.Model):
    """A signal the bot's webhook received (``POST /api/signals/<token>``). ``signal_id`` is the
    sender's id and makes the signal idempotent: one row per bot and id, and its orders' client
    ids carry the row (``order_ids.signal_stamp``), so the same id never trades twice.
    ``outcome`` stays ``received`` until the signal has been acted on: a repeat of a signal
    left so (a crash, an unreachable exchange) is acted on again under the same order ids."""

    class Action(models.TextChoices):
        BUY = "buy"
        SELL = "sell"
        CLOSE = "close"
        LONG = "long"
        SHORT = "short"
        FLAT = "flat"

    class Outcome(models.TextChoices):
        RECEIVED = "received", "Received (not acted on yet)"
        TRADED = "traded"
        HELD = "held", "Held (the bot was there already)"
        SKIPPED = "skipped", "Skipped (below the market's minimums or the risk limits)"
        REJECTED = "rejected", "Rejected by the exchange"
        REFUSED = "refused", "Refused (the daily loss limit was reached)"

    ID_MAX_LENGTH = 64

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="signals")
    signal_id = models.CharField(max_length=ID_MAX_LENGTH, help_text="The sender's id")
    action = models.CharField(max_length=8, choices=Action.choices)
    target = models.SmallIntegerField(help_text="The position it asks for (-1, 0, +1)")
    received_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.RECEIVED)
    message = models.TextField(blank=True, default="")
    order = models.ForeignKey(
        "Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The market order it placed (a flip's opening order)",
    )  # fmt: skip

    class Meta:
        db_table = "bot_signals"
        ordering = ("-received_at", "-id")
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("bot", "signal_id"), name="signal_id_per_bot"),
        ]
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("bot", "-received_at"), name="signal_bot_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.signal_id} ({self.outcome})"


class Trade(models.Model):
    """One fill of an order. ``pnl`` is realised on a sell (net of both sides' fees); 0 on a buy."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="trades")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="trades")
    symbol = models.CharField(max_length=40)
    side = models.CharField(max_length=4, choices=Order.Side.choices)
    qty = models.DecimalField(**PRICE)
    price = models.DecimalField(**PRICE)
    fee = models.DecimalField(**PRICE, default=0, help_text="In quote currency")
    pnl = models.DecimalField(**PRICE, default=0)
    time = models.DateTimeField(help_text="Fill time (market time in a replay)")

    class Meta:
        db_table = "trades"
        ordering = ("-time", "-id")
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("bot", "-time"), name="trade_bot_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} {self.symbol} @ {self.price}"


class Position(models.Model):
    """What a bot holds on its market. ``pnl`` is realised and cumulative; ``unrealized_pnl`` is
    the open quantity marked to the last close (a perp's: to the mark price). ``qty`` is never
    negative: a short is ``side`` short. ``leverage``, ``margin``, ``liquidation_price`` and
    ``funding`` (received, cumulative; negative: paid) are a perpetual swap's."""

    class Side(models.TextChoices):
        LONG = "long"
        SHORT = "short"

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=40)
    side = models.CharField(max_length=5, choices=Side.choices, default=Side.LONG)
    qty = models.DecimalField(**PRICE, default=0)
    entry_price = models.DecimalField(**PRICE, null=True, blank=True)
    entry_fees = models.DecimalField(
        **PRICE, default=0, help_text="Fees paid to open the quantity held, in quote"
    )
    pnl = models.DecimalField(**PRICE, default=0)
    unrealized_pnl = models.DecimalField(**PRICE, default=0)
    mark_price = models.DecimalField(**PRICE, null=True, blank=True)
    leverage = models.PositiveSmallIntegerField(default=1)
    margin = models.DecimalField(**PRICE, default=0, help_text="Isolated margin held, in quote")
    liquidation_price = models.DecimalField(**PRICE, null=True, blank=True)
    funding = models.DecimalField(
        **PRICE, default=0, help_text="Funding received while held, cumulative; negative: paid"
    )
    open_funding = models.DecimalField(
        **PRICE,
        default=0,
        help_text="Funding of the quantity held, not yet in a trade's pnl (negative: paid)",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "positions"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("bot", "symbol"), name="position_per_bot_symbol"),
        ]

    def __str__(self) -> str:
        return f"{self.qty} {self.symbol}"


class BotEvent(models.Model):
    """The bot's own log: one row per meaningful event (a tick, an order, an error)."""

    class Level(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="events")
    time = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    kind = models.CharField(max_length=40)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "bot_events"
        ordering = ("-time", "-id")
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("bot", "-time"), name="bot_event_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.level} {self.kind}"


class BotEquity(models.Model):
    """The bot's equity curve: one row per closed candle the bot acts on, stamped at the
    candle's close on the bot's own clock (a replay's: the replayed candle's close, not the
    wall clock). The bot's equity is its result in quote, ``realised + unrealised`` on its
    market (no capital of its own: it trades its account's balance). Older rows are thinned by
    ``bots.services.equity.equity_compact``: every row of the last two days of the bot's clock,
    the last of each hour up to 90 days, the last of each day beyond."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="equity")
    time = models.DateTimeField(help_text="The candle's close (market time in a replay)")
    realised = models.DecimalField(**PRICE, help_text="Position.pnl then, in quote")
    unrealised = models.DecimalField(**PRICE, help_text="Position.unrealized_pnl then, in quote")

    class Meta:
        db_table = "bot_equity"
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("bot", "time"), name="bot_equity_time"),
        ]

    def __str__(self) -> str:
        return f"{self.bot_id} {self.time:%Y-%m-%d %H:%M} {self.equity}"

    @property
    def equity(self) -> Decimal:
        return self.realised + self.unrealised
