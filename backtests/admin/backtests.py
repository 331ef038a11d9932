"""Backtests and their trades in the admin: read-only results, re-run, cancelled and deleted
through the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from backtests import services
from backtests.admin.common import (
    EMPTY,
    ResultAdmin,
    RunColumns,
    epoch_ms_text,
    number_text,
    percent_text,
)
from backtests.models import ACCOUNT_FIELDS, Backtest, BacktestTrade
from tradingbot.admin_paging import EstimatedCountPaginator
from tradingbot.admin_utils import DeletedWithParentAdmin, change_url, changelist_url


@admin.register(Backtest)
class BacktestAdmin(RunColumns, ResultAdmin):
    list_display = (
        "id", "user", "strategy_key", "market", "period", "status", "progress_percent",
        "trade_count", "final_equity", "total_return", "schedule", "created_at",
    )  # fmt: skip
    list_filter = (
        "status",
        "strategy",
        "exchange",
        "timeframe",
        ("schedule", admin.EmptyFieldListFilter),
        "created_at",
    )
    search_fields = ("id__exact", "user__email")
    list_select_related = ("user", "schedule")
    show_full_result_count = False
    actions = ("rerun_backtests", "cancel_backtests")
    fieldsets = (
        (None, {"fields": ("user", "status", "progress_percent", "error", "schedule_link")}),
        ("Configuration", {"fields": ("strategy", "params", "market", "period", *ACCOUNT_FIELDS)}),
        ("Results", {"fields": ("metrics_table", "candle_count", "trades_link", "equity_points")}),
        (
            "Execution",
            {
                "fields": (
                    "task_id",
                    "worker",
                    "attempts",
                    "created_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                )
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Backtest]:
        # The equity curve (up to BACKTEST_EQUITY_POINTS pairs) is not shown in lists.
        return super().get_queryset(request).defer("equity")

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, backtest: Backtest) -> str:
        return f"{backtest.progress:.0%}"

    @admin.display(description="final equity")
    def final_equity(self, backtest: Backtest) -> str:
        return number_text((backtest.metrics or {}).get("final_equity"))

    @admin.display(description="total return")
    def total_return(self, backtest: Backtest) -> str:
        return percent_text((backtest.metrics or {}).get("total_return"))

    @admin.display(description="schedule")
    def schedule_link(self, backtest: Backtest) -> str:
        if backtest.schedule is None:
            return EMPTY
        return format_html('<a href="{}">{}</a>', change_url(backtest.schedule), backtest.schedule)

    @admin.display(description="metrics")
    def metrics_table(self, backtest: Backtest) -> str:
        if not backtest.metrics:
            return EMPTY
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "", "<tr><th>{}</th><td>{}</td></tr>", sorted(backtest.metrics.items())
            ),
        )

    @admin.display(description="trades")
    def trades_link(self, backtest: Backtest) -> str:
        # A link, not an inline: a long backtest holds tens of thousands of trades.
        url = changelist_url(BacktestTrade, backtest__id__exact=backtest.pk)
        return format_html('<a href="{}">{} trades</a>', url, backtest.trade_count)

    @admin.display(description="equity curve")
    def equity_points(self, backtest: Backtest) -> str:
        return f"{len(backtest.equity)} points"

    @admin.action(description="Re-run selected backtests", permissions=["rerun"])
    def rerun_backtests(self, request: HttpRequest, queryset: QuerySet[Backtest]) -> None:
        self.rerun_each(request, queryset.select_related("user", "schedule"))

    @admin.action(description="Cancel selected backtests", permissions=["cancel"])
    def cancel_backtests(self, request: HttpRequest, queryset: QuerySet[Backtest]) -> None:
        self.cancel_each(request, queryset)

    def rerun_run(self, run: Backtest) -> Backtest:
        return services.backtest_rerun(backtest=run)

    def cancel_run(self, run: Backtest) -> Backtest:
        return services.backtest_cancel(backtest=run)

    def delete_run(self, run: Backtest) -> None:
        services.backtest_delete(backtest=run)

    def deleted_counts(self, runs: list[Any]) -> dict[str, int]:
        trades = BacktestTrade.objects.filter(backtest__in=runs).count()
        return {"backtests": len(runs), "backtest trades": trades}


@admin.register(BacktestTrade)
class BacktestTradeAdmin(DeletedWithParentAdmin):
    """The trades of one backtest (open them from its page). They go only with their backtest:
    deleting one would leave its backtest's metrics wrong, so there is no delete here (the
    permission stays, so deleting a backtest or a user still cascades to its trades)."""

    deleted_with = "A trade is deleted only with its backtest."
    # Newest backtest first, by the (backtest, seq) unique index: the model's ordering by
    # "backtest" would join every trade to its backtest and sort the whole table.
    ordering = ("-backtest_id", "seq")
    paginator = EstimatedCountPaginator

    list_display = (
        "backtest_link", "seq", "side", "entry", "exit", "qty", "entry_price", "exit_price",
        "fee", "pnl", "return_percent", "exit_reason",
    )  # fmt: skip
    list_filter = ("exit_reason", "side")

    @admin.display(description="backtest", ordering="backtest")
    def backtest_link(self, trade: BacktestTrade) -> str:
        # By id: loading each row's backtest would drag its equity curve along.
        url = reverse("admin:backtests_backtest_change", args=[trade.backtest_id])
        return format_html('<a href="{}">#{}</a>', url, trade.backtest_id)

    @admin.display(description="entry (UTC)", ordering="entry_time")
    def entry(self, trade: BacktestTrade) -> str:
        return epoch_ms_text(trade.entry_time)

    @admin.display(description="exit (UTC)", ordering="exit_time")
    def exit(self, trade: BacktestTrade) -> str:
        return epoch_ms_text(trade.exit_time)

    @admin.display(description="return", ordering="return_rate")
    def return_percent(self, trade: BacktestTrade) -> str:
        return percent_text(trade.return_rate)
