from __future__ import annotations

from typing import Any

from django.contrib import admin

from bots.models import Candle, MarketSnapshot, PaperBalance, PaperOrder


class ReadOnlyAdmin(admin.ModelAdmin):
    """Market data and the paper ledger are written by the platform, never by hand."""

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Candle)
class CandleAdmin(ReadOnlyAdmin):
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
    list_filter = ("exchange", "timeframe", "symbol")
    search_fields = ("symbol",)
    show_full_result_count = False


@admin.register(MarketSnapshot)
class MarketSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("exchange", "fetched_at", "market_count")
    list_filter = ("exchange",)
    exclude = ("markets",)

    @admin.display(description="markets")
    def market_count(self, snapshot: MarketSnapshot) -> int:
        return len(snapshot.markets)


@admin.register(PaperBalance)
class PaperBalanceAdmin(ReadOnlyAdmin):
    list_display = ("account", "currency", "free", "used")
    list_filter = ("currency",)
    search_fields = ("account__label", "account__user__email")
    list_select_related = ("account", "account__user")


@admin.register(PaperOrder)
class PaperOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "order_id", "account", "symbol", "side", "order_type", "price", "amount", "filled",
        "average", "fee_cost", "status", "created_at",
    )  # fmt: skip
    list_filter = ("status", "side", "order_type", "symbol")
    search_fields = ("order_id", "client_order_id", "account__label", "account__user__email")
    list_select_related = ("account", "account__user")
