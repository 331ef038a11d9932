"""The markets app in the Django admin.

Staff see which exchange accounts exist, never their secrets. Candles (trade and mark), funding
rates, market snapshots, the paper ledger and the accounts' equity samples are written by the
platform, never by hand: read-only here.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from markets import services
from markets.models import (
    AccountEquity,
    Candle,
    ExchangeAccount,
    FundingRate,
    MarkCandle,
    MarketSnapshot,
    PaperBalance,
    PaperOrder,
    PaperPosition,
)
from tradingbot.admin_paging import EstimatedCountPaginator
from tradingbot.admin_utils import changelist_url
from tradingbot.errors import AppError


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    """Staff see which accounts exist, never their secrets: the API key's last four characters
    (the model's own mask), and whether a secret and a passphrase are set."""

    list_display = (
        "label", "user", "exchange", "mode", "keys", "credentials", "bot_count", "created_at",
    )  # fmt: skip
    list_filter = ("exchange", "mode", "created_at")
    search_fields = ("label", "user__email")
    list_select_related = ("user",)
    actions = ("verify_keys",)
    fields = (
        "user", "label", "exchange", "mode", "credentials", "keys", "verified_at",
        "verification_error", "paper_slippage_bps",
        "paper_maker_fee", "paper_taker_fee", "bots_link", "created_at",
    )  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExchangeAccount]:
        return super().get_queryset(request).annotate(bot_total=Count("bots"))

    @admin.display(description="credentials")
    def credentials(self, account: ExchangeAccount) -> str:
        if account.mode == ExchangeAccount.Mode.PAPER and not account.api_key:
            return "none (paper)"
        key = f"API key {account.api_key_masked}" if account.api_key else "no API key"
        secret = "secret set" if account.api_secret else "no secret"
        passphrase = "passphrase set" if account.passphrase else "no passphrase"
        return f"{key} · {secret} · {passphrase}"

    @admin.display(description="keys", ordering="verified_at")
    def keys(self, account: ExchangeAccount) -> str:
        """A live account's keys: verified by the exchange, or unverified (with why)."""
        if account.verification == "not_needed":
            return "—"
        if account.verification == "verified":
            return "verified"
        return (
            f"unverified: {account.verification_error}"
            if account.verification_error
            else ("unverified")
        )

    @admin.display(description="bots", ordering="bot_total")
    def bot_count(self, account: ExchangeAccount) -> int:
        return getattr(account, "bot_total", 0)

    @admin.display(description="bots")
    def bots_link(self, account: ExchangeAccount) -> str:
        url = changelist_url("bots_bot", exchange_account__id__exact=account.pk)
        return format_html('<a href="{}">{} bot(s)</a>', url, account.bots.count())

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Secrets are entered by their owner only, on the exchange-accounts page or the API.
        return False

    @admin.action(description="Check the keys of the selected live accounts at the exchange")
    def verify_keys(self, request: HttpRequest, queryset: QuerySet[ExchangeAccount]) -> None:
        """A balance fetch with each live account's keys; the answer is recorded on it."""
        for account in queryset.filter(mode=ExchangeAccount.Mode.LIVE):
            try:
                services.exchange_account_verify(account=account)
            except AppError as error:
                self.message_user(request, f"{account}: {error.message}", messages.WARNING)
            else:
                self.message_user(request, f"{account}: keys verified.", messages.SUCCESS)
            self.log_change(request, account, f"Keys checked: {account.verification}.")

    def delete_model(self, request: HttpRequest, obj: ExchangeAccount) -> None:
        services.exchange_account_delete(account=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ExchangeAccount]) -> None:
        for account in queryset:
            try:
                services.exchange_account_delete(account=account)
            except AppError as error:  # a bot was made on it since the confirmation page
                self.message_user(request, f"{account}: {error.message}", messages.ERROR)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Market data and the paper ledger are written by the platform, never by hand."""

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Candle)
class CandleAdmin(ReadOnlyAdmin):
    """Millions of rows: no exact count of the whole table (``EstimatedCountPaginator``), no
    filter that reads every row for its choices (an exchange or symbol filter would run
    ``SELECT DISTINCT`` over the table), newest rows first by the primary key. Find a market by
    its exact symbol (``BTC/USDT``)."""

    list_display = (
        "exchange",
        "symbol",
        "timeframe",
        "opened_at",
        "open",
        "high",
        "low",
        "close",
        "volume",
    )
    list_filter = ("timeframe",)
    search_fields = ("=symbol",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-id",)


@admin.register(MarkCandle)
class MarkCandleAdmin(ReadOnlyAdmin):
    """A perp's mark-price candles: as many rows as candles, kept as the candles are."""

    list_display = ("exchange", "symbol", "timeframe", "open_time", "open", "high", "low", "close")
    list_filter = ("timeframe",)
    search_fields = ("=symbol",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-id",)


@admin.register(FundingRate)
class FundingRateAdmin(ReadOnlyAdmin):
    list_display = ("exchange", "symbol", "funding_time", "rate")
    search_fields = ("=symbol",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-id",)


@admin.register(MarketSnapshot)
class MarketSnapshotAdmin(ReadOnlyAdmin):
    """A snapshot holds every market of its exchange (megabytes of JSON): the list does not
    load it; a snapshot's page counts its markets."""

    list_display = ("exchange", "fetched_at")
    list_filter = ("exchange",)
    fields = ("exchange", "fetched_at", "market_count")
    readonly_fields = fields
    ordering = ("-fetched_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[MarketSnapshot]:
        return super().get_queryset(request).defer("markets")

    @admin.display(description="markets")
    def market_count(self, snapshot: MarketSnapshot) -> int:
        return len(snapshot.markets)


@admin.register(PaperBalance)
class PaperBalanceAdmin(ReadOnlyAdmin):
    list_display = ("account", "currency", "free", "used")
    list_filter = ("currency",)
    search_fields = ("account__label", "account__user__email")
    list_select_related = ("account", "account__user")


@admin.register(PaperPosition)
class PaperPositionAdmin(ReadOnlyAdmin):
    """The paper exchange's perp positions (its own books; a bot's are in bots)."""

    list_display = (
        "account", "symbol", "side", "qty", "entry_price", "leverage", "margin", "funding",
        "realized_pnl", "liquidation_price", "updated_at",
    )  # fmt: skip
    list_filter = ("side",)
    search_fields = ("account__label", "account__user__email", "=symbol")
    list_select_related = ("account", "account__user")


@admin.register(AccountEquity)
class AccountEquityAdmin(ReadOnlyAdmin):
    """A paper account's equity samples (written once a minute, thinned with age)."""

    list_display = ("account", "time", "equity")
    search_fields = ("account__label", "account__user__email")
    list_select_related = ("account", "account__user")
    show_full_result_count = False
    ordering = ("-id",)
    paginator = EstimatedCountPaginator


@admin.register(PaperOrder)
class PaperOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "order_id", "account", "symbol", "side", "order_type", "price", "amount", "filled",
        "average", "fee_cost", "status", "created_at",
    )  # fmt: skip
    list_filter = ("status", "side", "order_type")
    search_fields = ("order_id", "client_order_id", "account__label", "account__user__email",
                     "=symbol")  # fmt: skip
    list_select_related = ("account", "account__user")
    show_full_result_count = False
    ordering = ("-id",)
