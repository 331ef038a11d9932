"""Walk-forwards and their windows in the admin: read-only results, re-run, cancelled and deleted
through the services; a walk-forward's page lists its windows with their optimisations."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from backtests.admin.common import (
    EMPTY,
    ResultAdmin,
    RunColumns,
    metrics_summary,
    params_text,
    utc_text,
)
from backtests.models import ACCOUNT_FIELDS, WalkForward, WalkForwardWindow
from backtests.services import walk_forwards as services
from tradingbot.admin_utils import DeletedWithParentAdmin

SEARCH_FIELDS = (
    "strategy", "params", "space", "objectives", "sampler", "seed", "min_trades",
    "trials_per_window",
)  # fmt: skip
WINDOW_FIELDS = (
    "market", "period", "in_sample_days", "out_of_sample_days", "window_count", "anchored",
)  # fmt: skip
PROGRESS_FIELDS = (
    "trial_count", "trials_finished", "windows_done", "candle_count", "created_at",
    "started_at", "heartbeat_at", "finished_at",
)  # fmt: skip


def _optimization_link(window: WalkForwardWindow) -> str:
    """The window's optimisation: a link to its admin page once optimisations have one."""
    if window.optimization_id is None:
        return EMPTY
    try:
        url = reverse("admin:backtests_optimization_change", args=[window.optimization_id])
    except NoReverseMatch:
        return f"#{window.optimization_id}"
    return format_html('<a href="{}">#{}</a>', url, window.optimization_id)


def _periods(window: WalkForwardWindow) -> str:
    return (
        f"in {utc_text(window.in_sample_start)} → {utc_text(window.in_sample_end)}, "
        f"out → {utc_text(window.out_of_sample_end)}"
    )


class WindowInline(admin.TabularInline):
    model = WalkForwardWindow
    fields = (
        "index", "status", "periods", "optimization_link", "params_summary",
        "in_sample_summary", "out_of_sample_summary", "error",
    )  # fmt: skip
    readonly_fields = fields
    ordering = ("index",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="periods (UTC)")
    def periods(self, window: WalkForwardWindow) -> str:
        return _periods(window)

    @admin.display(description="optimisation")
    def optimization_link(self, window: WalkForwardWindow) -> str:
        return _optimization_link(window)

    @admin.display(description="best params")
    def params_summary(self, window: WalkForwardWindow) -> str:
        return params_text(window.params) if window.params else EMPTY

    @admin.display(description="in sample")
    def in_sample_summary(self, window: WalkForwardWindow) -> str:
        return metrics_summary(window.in_sample_metrics)

    @admin.display(description="out of sample")
    def out_of_sample_summary(self, window: WalkForwardWindow) -> str:
        return metrics_summary(window.out_of_sample_metrics)


@admin.register(WalkForward)
class WalkForwardAdmin(RunColumns, ResultAdmin):
    list_display = (
        "id", "user", "strategy_key", "market", "period", "status", "progress_percent",
        "window_count", "anchored", "result", "ratio", "created_at",
    )  # fmt: skip
    list_filter = ("status", "anchored", "strategy", "created_at")
    search_fields = ("id__exact", "user__email")
    list_select_related = ("user",)
    show_full_result_count = False
    inlines = (WindowInline,)
    actions = ("rerun_walk_forwards", "cancel_walk_forwards")
    fieldsets = (
        (None, {"fields": ("user", "status", "progress_percent", "error", "result", "ratio")}),
        ("Search", {"fields": SEARCH_FIELDS}),
        ("Windows", {"fields": WINDOW_FIELDS}),
        ("Simulated account", {"fields": ACCOUNT_FIELDS}),
        (
            "Results",
            {"fields": ("metrics", "trade_count", "in_sample_return", "out_of_sample_return")},
        ),
        ("Progress", {"fields": PROGRESS_FIELDS}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    @admin.display(description="progress")
    def progress_percent(self, walk_forward: WalkForward) -> str:
        return f"{walk_forward.progress:.0%}"

    @admin.display(description="out-of-sample return")
    def result(self, walk_forward: WalkForward) -> str:
        value = (walk_forward.metrics or {}).get("total_return")
        return EMPTY if value is None else f"{value * 100:+.2f} %"

    @admin.display(description="overfitting ratio")
    def ratio(self, walk_forward: WalkForward) -> str:
        value = walk_forward.overfitting_ratio
        return EMPTY if value is None else f"{value:.2f}"

    @admin.action(description="Re-run selected walk-forwards", permissions=["rerun"])
    def rerun_walk_forwards(self, request: HttpRequest, queryset: QuerySet[WalkForward]) -> None:
        self.rerun_each(request, queryset.select_related("user"))

    @admin.action(description="Cancel selected walk-forwards", permissions=["cancel"])
    def cancel_walk_forwards(self, request: HttpRequest, queryset: QuerySet[WalkForward]) -> None:
        self.cancel_each(request, queryset)

    def rerun_run(self, run: WalkForward) -> WalkForward:
        return services.walk_forward_rerun(walk_forward=run)

    def cancel_run(self, run: WalkForward) -> WalkForward:
        return services.walk_forward_cancel(walk_forward=run)

    def delete_run(self, run: WalkForward) -> None:
        services.walk_forward_delete(walk_forward=run)

    def deleted_counts(self, runs: list[Any]) -> dict[str, int]:
        windows = WalkForwardWindow.objects.filter(walk_forward__in=runs).count()
        return {"walk-forwards": len(runs), "windows and their optimisations": windows}


@admin.register(WalkForwardWindow)
class WalkForwardWindowAdmin(DeletedWithParentAdmin):
    """Every window of every walk-forward, to find failed ones across them. They go only with
    their walk-forward."""

    deleted_with = "A window is deleted only with its walk-forward."
    ordering = ("-walk_forward_id", "index")
    list_display = (
        "walk_forward_link", "index", "status", "periods", "optimization_link", "params_summary",
        "out_of_sample_summary", "worker", "finished_at",
    )  # fmt: skip
    list_filter = ("status",)
    search_fields = ("walk_forward__id__exact", "walk_forward__user__email")

    @admin.display(description="walk-forward", ordering="walk_forward_id")
    def walk_forward_link(self, window: WalkForwardWindow) -> str:
        url = reverse("admin:backtests_walkforward_change", args=[window.walk_forward_id])
        return format_html('<a href="{}">#{}</a>', url, window.walk_forward_id)

    @admin.display(description="periods (UTC)")
    def periods(self, window: WalkForwardWindow) -> str:
        return _periods(window)

    @admin.display(description="optimisation")
    def optimization_link(self, window: WalkForwardWindow) -> str:
        return _optimization_link(window)

    @admin.display(description="best params")
    def params_summary(self, window: WalkForwardWindow) -> str:
        return params_text(window.params) if window.params else EMPTY

    @admin.display(description="out of sample")
    def out_of_sample_summary(self, window: WalkForwardWindow) -> str:
        return metrics_summary(window.out_of_sample_metrics)
