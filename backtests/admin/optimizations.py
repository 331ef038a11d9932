"""Optimisations and their trials in the admin: read-only results, re-run, cancelled and deleted
through the services; an optimisation's page lists its first trials and its best result."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from backtests import services
from backtests.admin.common import EMPTY, ResultAdmin, RunColumns, metrics_summary, params_text
from backtests.models import ACCOUNT_FIELDS, Optimization, OptimizationTrial
from tradingbot.admin_paging import EstimatedCountPaginator
from tradingbot.admin_utils import DeletedWithParentAdmin

TRIALS_SHOWN = 200  # trials listed inline on an optimisation's page (it may run 1000)
SEARCH_FIELDS = (
    "strategy", "params", "space", "objectives", "sampler", "seed", "min_trades", "trial_count",
    "market", "period",
)  # fmt: skip
RESULT_FIELDS = ("best_trial", "best_value", "best_params", "best_metrics", "pareto", "importances")
PROGRESS_FIELDS = (
    "claimed_count", "done_count", "pruned_count", "failed_count", "candle_count", "created_at",
    "enqueued_at", "started_at", "heartbeat_at", "finished_at",
)  # fmt: skip


class FirstTrialsFormSet(forms.BaseInlineFormSet):
    """The first ``TRIALS_SHOWN`` trials (sliced here: an inline is filtered by its parent
    after ``get_queryset``)."""

    def get_queryset(self) -> QuerySet[OptimizationTrial]:
        if not hasattr(self, "_limited"):
            self._limited = super().get_queryset()[:TRIALS_SHOWN]
        return self._limited


class OptimizationTrialInline(admin.TabularInline):
    model = OptimizationTrial
    formset = FirstTrialsFormSet
    fields = ("number", "state", "params", "value", "feasible", "metrics_summary", "error",
              "worker", "finished_at")  # fmt: skip
    readonly_fields = fields
    ordering = ("number",)
    extra = 0
    can_delete = False
    verbose_name_plural = f"trials (the first {TRIALS_SHOWN})"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="metrics")
    def metrics_summary(self, trial: OptimizationTrial) -> str:
        return metrics_summary(trial.metrics)


@admin.register(Optimization)
class OptimizationAdmin(RunColumns, ResultAdmin):
    list_display = (
        "id", "user", "strategy_key", "market", "period", "status", "progress_percent",
        "trials_summary", "sampler", "best_result", "created_at",
    )  # fmt: skip
    list_filter = ("status", "sampler", "strategy", "created_at")
    search_fields = ("id__exact", "user__email")
    list_select_related = ("user",)
    show_full_result_count = False
    inlines = (OptimizationTrialInline,)
    actions = ("rerun_optimizations", "cancel_optimizations")
    fieldsets = (
        (None, {"fields": ("user", "status", "progress_percent", "error", "best_result")}),
        ("Search", {"fields": SEARCH_FIELDS}),
        ("Simulated account", {"fields": ACCOUNT_FIELDS}),
        ("Results", {"fields": RESULT_FIELDS}),
        ("Progress", {"fields": PROGRESS_FIELDS}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    @admin.display(description="progress")
    def progress_percent(self, optimization: Optimization) -> str:
        return f"{optimization.progress:.0%}"

    @admin.display(description="trials")
    def trials_summary(self, optimization: Optimization) -> str:
        """Done / pruned / failed, of the trials to run."""
        return (
            f"{optimization.done_count}/{optimization.pruned_count}/{optimization.failed_count}"
            f" of {optimization.trial_count}"
        )

    @admin.display(description="best result")
    def best_result(self, optimization: Optimization) -> str:
        if optimization.best_value is None:
            return EMPTY
        return (
            f"#{optimization.best_trial} {optimization.best_value:.4g}: "
            f"{params_text(optimization.best_params or {})}"
        )

    @admin.action(description="Re-run selected optimisations", permissions=["rerun"])
    def rerun_optimizations(self, request: HttpRequest, queryset: QuerySet[Optimization]) -> None:
        self.rerun_each(request, queryset.select_related("user"))

    @admin.action(description="Cancel selected optimisations", permissions=["cancel"])
    def cancel_optimizations(self, request: HttpRequest, queryset: QuerySet[Optimization]) -> None:
        self.cancel_each(request, queryset)

    def rerun_run(self, run: Optimization) -> Optimization:
        return services.optimization_rerun(optimization=run)

    def cancel_run(self, run: Optimization) -> Optimization:
        return services.optimization_cancel(optimization=run)

    def delete_run(self, run: Optimization) -> None:
        services.optimization_delete(optimization=run)

    def deleted_counts(self, runs: list[Any]) -> dict[str, int]:
        trials = OptimizationTrial.objects.filter(optimization__in=runs).count()
        return {"optimisations": len(runs), "optimisation trials": trials}


@admin.register(OptimizationTrial)
class OptimizationTrialAdmin(DeletedWithParentAdmin):
    """Every trial of every optimisation, to find failed ones across optimisations (an
    optimisation's page lists its first ``TRIALS_SHOWN``). They go only with their optimisation."""

    deleted_with = "A trial is deleted only with its optimisation."
    # Newest optimisation first, through the (optimization, number) unique index.
    ordering = ("-optimization_id", "number")
    paginator = EstimatedCountPaginator
    list_display = (
        "optimization_link", "number", "state", "value", "feasible", "params_summary",
        "metrics_summary", "short_error", "worker", "finished_at",
    )  # fmt: skip
    list_filter = ("state", "feasible")
    search_fields = ("optimization__id__exact", "optimization__user__email")

    @admin.display(description="optimisation", ordering="optimization_id")
    def optimization_link(self, trial: OptimizationTrial) -> str:
        url = reverse("admin:backtests_optimization_change", args=[trial.optimization_id])
        return format_html('<a href="{}">#{}</a>', url, trial.optimization_id)

    @admin.display(description="params")
    def params_summary(self, trial: OptimizationTrial) -> str:
        return params_text(trial.params)

    @admin.display(description="metrics")
    def metrics_summary(self, trial: OptimizationTrial) -> str:
        return metrics_summary(trial.metrics)

    @admin.display(description="error")
    def short_error(self, trial: OptimizationTrial) -> str:
        if not trial.error:
            return EMPTY
        return trial.error if len(trial.error) <= 80 else trial.error[:79] + "…"
