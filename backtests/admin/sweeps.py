"""Sweeps and their combinations in the admin: read-only results, re-run, cancelled and deleted
through the services; a sweep's page lists its first combinations and its best result."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import FloatField, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from backtests import services
from backtests.admin.common import (
    EMPTY,
    ResultAdmin,
    RunColumns,
    metrics_summary,
    params_text,
)
from backtests.metrics import LOWER_IS_BETTER
from backtests.models import ACCOUNT_FIELDS, RunStatus, Sweep, SweepRun
from tradingbot.admin_paging import EstimatedCountPaginator
from tradingbot.admin_utils import DeletedWithParentAdmin

SWEEP_RUNS_SHOWN = 200  # combinations listed inline on a sweep's page (a sweep may hold 1000s)


class FirstRunsFormSet(forms.BaseInlineFormSet):
    """The first ``SWEEP_RUNS_SHOWN`` combinations (an inline cannot be sliced before it is
    filtered by its sweep, so the slice happens here)."""

    def get_queryset(self) -> QuerySet[SweepRun]:
        if not hasattr(self, "_limited"):
            self._limited = super().get_queryset()[:SWEEP_RUNS_SHOWN]
        return self._limited


class SweepRunInline(admin.TabularInline):
    model = SweepRun
    formset = FirstRunsFormSet
    fields = ("seq", "params", "status", "metrics_summary", "error", "worker", "finished_at")
    readonly_fields = fields
    ordering = ("seq",)
    extra = 0
    can_delete = False
    verbose_name_plural = f"combinations (the first {SWEEP_RUNS_SHOWN})"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="metrics")
    def metrics_summary(self, run: SweepRun) -> str:
        return metrics_summary(run.metrics)


def best_run(sweep: Sweep) -> SweepRun | None:
    """The top of ``selectors.sweep_ranking``, found by the database: one row, however many
    combinations the sweep has (same order: missing values last, then grid order)."""
    value = Cast(KT(f"metrics__{sweep.rank_by}"), FloatField())
    if sweep.rank_by in LOWER_IS_BETTER:
        order = value.asc(nulls_last=True)
    else:
        order = value.desc(nulls_last=True)
    return sweep.runs.filter(status=RunStatus.DONE).order_by(order, "seq").first()


@admin.register(Sweep)
class SweepAdmin(RunColumns, ResultAdmin):
    list_display = (
        "id", "user", "strategy_key", "market", "period", "status", "progress_percent",
        "combination_count", "best_result", "created_at",
    )  # fmt: skip
    list_filter = ("status", "strategy", "created_at")
    search_fields = ("id__exact", "user__email")
    list_select_related = ("user",)
    show_full_result_count = False
    inlines = (SweepRunInline,)
    actions = ("rerun_sweeps", "cancel_sweeps")
    fieldsets = (
        (None, {"fields": ("user", "status", "progress_percent", "error", "best_result")}),
        (
            "Configuration",
            {"fields": ("strategy", "params", "grid", "rank_by", "market", "period")},
        ),
        ("Simulated account", {"fields": ACCOUNT_FIELDS}),
        (
            "Progress",
            {
                "fields": (
                    "combination_count",
                    "skipped_count",
                    "done_count",
                    "failed_count",
                    "candle_count",
                    "task_id",
                    "created_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                )
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    @admin.display(description="progress")
    def progress_percent(self, sweep: Sweep) -> str:
        return f"{sweep.progress:.0%}"

    @admin.display(description="best result")
    def best_result(self, sweep: Sweep) -> str:
        run = best_run(sweep) if sweep.done_count else None
        if run is None:
            return EMPTY
        value = (run.metrics or {}).get(sweep.rank_by)
        shown = EMPTY if value is None else f"{value:.4g}"
        return f"{sweep.rank_by} {shown}: {params_text(run.params)}"

    @admin.action(description="Re-run selected sweeps", permissions=["rerun"])
    def rerun_sweeps(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> None:
        self.rerun_each(request, queryset.select_related("user"))

    @admin.action(description="Cancel selected sweeps", permissions=["cancel"])
    def cancel_sweeps(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> None:
        self.cancel_each(request, queryset)

    def rerun_run(self, run: Sweep) -> Sweep:
        return services.sweep_rerun(sweep=run)

    def cancel_run(self, run: Sweep) -> Sweep:
        return services.sweep_cancel(sweep=run)

    def delete_run(self, run: Sweep) -> None:
        services.sweep_delete(sweep=run)

    def deleted_counts(self, runs: list[Any]) -> dict[str, int]:
        combinations = SweepRun.objects.filter(sweep__in=runs).count()
        return {"sweeps": len(runs), "sweep combinations": combinations}


@admin.register(SweepRun)
class SweepRunAdmin(DeletedWithParentAdmin):
    """Every combination of every sweep, to find failed ones across sweeps (a sweep's page lists
    its first ``SWEEP_RUNS_SHOWN``). They go only with their sweep."""

    deleted_with = "A combination is deleted only with its sweep."
    # Newest sweep first, through the (sweep, seq) unique index (see BacktestTradeAdmin).
    ordering = ("-sweep_id", "seq")
    paginator = EstimatedCountPaginator
    list_display = (
        "sweep_link", "seq", "status", "params_summary", "metrics_summary", "short_error",
        "worker", "finished_at",
    )  # fmt: skip
    list_filter = ("status",)
    search_fields = ("sweep__id__exact", "sweep__user__email")

    @admin.display(description="sweep", ordering="sweep_id")
    def sweep_link(self, run: SweepRun) -> str:
        url = reverse("admin:backtests_sweep_change", args=[run.sweep_id])
        return format_html('<a href="{}">#{}</a>', url, run.sweep_id)

    @admin.display(description="params")
    def params_summary(self, run: SweepRun) -> str:
        return params_text(run.params)

    @admin.display(description="metrics")
    def metrics_summary(self, run: SweepRun) -> str:
        return metrics_summary(run.metrics)

    @admin.display(description="error")
    def short_error(self, run: SweepRun) -> str:
        if not run.error:
            return EMPTY
        return run.error if len(run.error) <= 80 else run.error[:79] + "…"
