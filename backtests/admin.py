"""The backtests app in the Django admin.

Backtests, their trades and sweeps are results written by workers: staff see them read-only and
act on them only through the services (re-run, cancel, delete), never by editing a row. Schedules
are editable: saving one keeps its django-celery-beat ``PeriodicTask`` in step, deleting one
deletes that task too. Every staff action writes an admin ``LogEntry`` on each object it touched
(Django writes those of adding, editing and deleting), the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db import models, transaction
from django.db.models import FloatField, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from backtests import services
from backtests.models import (
    ACTIVE_STATUSES,
    Backtest,
    BacktestSchedule,
    BacktestTrade,
    RunStatus,
    Sweep,
    SweepRun,
)
from backtests.services.config import usable_strategy, validated_params
from backtests.services.schedules import MAX_LOOKBACK_DAYS
from backtests.services.sweeps import LOWER_IS_BETTER
from markets.services import check_symbol
from tradingbot.admin_paging import EstimatedCountPaginator
from tradingbot.admin_utils import DeletedWithParentAdmin
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

RECENT_RUNS = 20  # a schedule's history shown on its page
SWEEP_RUNS_SHOWN = 200  # combinations listed inline on a sweep's page (a sweep may hold 1000s)
EMPTY = "—"

SETTINGS_FIELDS = (
    "initial_cash",
    "fee_rate",
    "slippage_bps",
    "position_size",
    "stop_loss",
    "take_profit",
)


# --- formatting ---------------------------------------------------------------------------------


def _utc(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else EMPTY


def _percent(fraction: float | None) -> str:
    return EMPTY if fraction is None else f"{fraction * 100:+.2f} %"


def _number(value: float | None) -> str:
    return EMPTY if value is None else f"{value:,.2f}"


def _epoch_ms(ms: int) -> str:
    return _utc(datetime.fromtimestamp(ms / 1000, tz=UTC))


def _change_url(obj: models.Model) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def _changelist_url(model: type[models.Model], **filters: Any) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _params(params: dict[str, Any]) -> str:
    # Sorted: PostgreSQL's jsonb does not keep the order the strategy declares them in.
    return ", ".join(f"{name}={value}" for name, value in sorted(params.items()))


def _metrics_summary(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return EMPTY
    return (
        f"return {_percent(metrics.get('total_return'))} · "
        f"sharpe {_number(metrics.get('sharpe'))} · "
        f"max dd {_percent(metrics.get('max_drawdown'))} · "
        f"trades {metrics.get('trade_count', EMPTY)}"
    )


# --- shared behaviour ---------------------------------------------------------------------------


class ResultAdmin(admin.ModelAdmin):
    """Rows written by workers: viewable and deletable, never added or edited by hand. Actions
    that start or stop runs need the model's add / change permission (as the services would)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def get_deleted_objects(
        self, objs: Iterable[Any], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        """Count the rows that go with each run instead of listing them: a backtest may hold
        40 000 trades, which Django would otherwise render one by one on the confirmation."""
        runs = list(objs)
        return [str(run) for run in runs], self.deleted_counts(runs), set(), []

    def deleted_counts(self, runs: list[Any]) -> dict[str, int]:
        return {str(self.opts.verbose_name_plural): len(runs)}

    def _report(self, request: HttpRequest, done: str, count: int) -> None:
        if count:
            self.message_user(request, f"{count} {done}.", messages.SUCCESS)

    def _report_error(self, request: HttpRequest, run: Any, error: AppError) -> None:
        self.message_user(request, f"{run}: {error.message}", messages.ERROR)

    def _log_rerun(self, request: HttpRequest, source: Any, rerun: Any) -> None:
        """The audit trail of a re-run, on both runs: the one re-run and the one it made."""
        kind = self.opts.verbose_name
        self.log_change(request, source, f"Re-run (admin action) as {kind} #{rerun.pk}.")
        self.log_addition(request, rerun, f"Re-run of {kind} #{source.pk} (admin action).")


class RunColumns:
    """Strategy, market and period columns shared by backtests and sweeps."""

    @admin.display(description="strategy", ordering="strategy")
    def strategy_key(self, run: Backtest | Sweep) -> str:
        return run.strategy_id

    @admin.display(description="market")
    def market(self, run: Backtest | Sweep) -> str:
        return run.market_label

    @admin.display(description="period (UTC)", ordering="start")
    def period(self, run: Backtest | Sweep) -> str:
        return f"{_utc(run.start)} → {_utc(run.end)}"


# --- backtests ----------------------------------------------------------------------------------


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
        (
            None,
            {"fields": ("user", "status", "progress_percent", "error", "schedule_link")},
        ),
        (
            "Configuration",
            {"fields": ("strategy", "params", "market", "period", *SETTINGS_FIELDS)},
        ),
        (
            "Results",
            {"fields": ("metrics_table", "candle_count", "trades_link", "equity_points")},
        ),
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
        return _number((backtest.metrics or {}).get("final_equity"))

    @admin.display(description="total return")
    def total_return(self, backtest: Backtest) -> str:
        return _percent((backtest.metrics or {}).get("total_return"))

    @admin.display(description="schedule")
    def schedule_link(self, backtest: Backtest) -> str:
        if backtest.schedule is None:
            return EMPTY
        return format_html('<a href="{}">{}</a>', _change_url(backtest.schedule), backtest.schedule)

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
        url = _changelist_url(BacktestTrade, backtest__id__exact=backtest.pk)
        return format_html('<a href="{}">{} trades</a>', url, backtest.trade_count)

    @admin.display(description="equity curve")
    def equity_points(self, backtest: Backtest) -> str:
        return f"{len(backtest.equity)} points"

    @admin.action(description="Re-run selected backtests", permissions=["rerun"])
    def rerun_backtests(self, request: HttpRequest, queryset: QuerySet[Backtest]) -> None:
        created = 0
        for backtest in queryset.select_related("user", "schedule"):
            try:
                rerun = services.backtest_rerun(backtest=backtest)
            except AppError as exc:
                self._report_error(request, backtest, exc)
            else:
                self._log_rerun(request, backtest, rerun)
                created += 1
        self._report(request, "backtest(s) queued again", created)

    @admin.action(description="Cancel selected backtests", permissions=["cancel"])
    def cancel_backtests(self, request: HttpRequest, queryset: QuerySet[Backtest]) -> None:
        cancelled = finished = 0
        for backtest in queryset:
            was_active = backtest.is_active
            backtest = services.backtest_cancel(backtest=backtest)
            if was_active and backtest.status == RunStatus.CANCELLED:
                self.log_change(request, backtest, "Cancelled (admin action).")
                cancelled += 1
            else:
                finished += 1
        self._report(request, "backtest(s) cancelled", cancelled)
        if finished:
            self.message_user(
                request, f"{finished} had already finished; left as they were.", messages.WARNING
            )

    def delete_model(self, request: HttpRequest, obj: Backtest) -> None:
        services.backtest_delete(backtest=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Backtest]) -> None:
        for backtest in queryset:
            services.backtest_delete(backtest=backtest)

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
        return _epoch_ms(trade.entry_time)

    @admin.display(description="exit (UTC)", ordering="exit_time")
    def exit(self, trade: BacktestTrade) -> str:
        return _epoch_ms(trade.exit_time)

    @admin.display(description="return", ordering="return_rate")
    def return_percent(self, trade: BacktestTrade) -> str:
        return _percent(trade.return_rate)


# --- sweeps -------------------------------------------------------------------------------------


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
        return _metrics_summary(run.metrics)


def best_run(sweep: Sweep) -> SweepRun | None:
    """The top of ``services.sweep_ranking``, found by the database: one row, however many
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
        ("Simulated account", {"fields": SETTINGS_FIELDS}),
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
        return f"{sweep.rank_by} {shown}: {_params(run.params)}"

    @admin.action(description="Re-run selected sweeps", permissions=["rerun"])
    def rerun_sweeps(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> None:
        created = 0
        for sweep in queryset.select_related("user"):
            try:
                rerun = services.sweep_create(
                    user=sweep.user,
                    strategy=sweep.strategy_id,
                    grid=sweep.grid,
                    params=sweep.params,
                    rank_by=sweep.rank_by,
                    exchange=sweep.exchange,
                    symbol=sweep.symbol,
                    timeframe=sweep.timeframe,
                    start=sweep.start,
                    end=sweep.end,
                    **{field: getattr(sweep, field) for field in SETTINGS_FIELDS},
                )
            except AppError as exc:
                self._report_error(request, sweep, exc)
            else:
                self._log_rerun(request, sweep, rerun)
                created += 1
        self._report(request, "sweep(s) queued again", created)

    @admin.action(description="Cancel selected sweeps", permissions=["cancel"])
    def cancel_sweeps(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> None:
        cancelled = 0
        for sweep in queryset:
            was_active = sweep.status in ACTIVE_STATUSES
            sweep = services.sweep_cancel(sweep=sweep)
            if was_active and sweep.status == RunStatus.CANCELLED:
                self.log_change(request, sweep, "Cancelled (admin action).")
                cancelled += 1
        self._report(request, "sweep(s) cancelled", cancelled)

    def delete_model(self, request: HttpRequest, obj: Sweep) -> None:
        services.sweep_delete(sweep=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> None:
        for sweep in queryset:
            services.sweep_delete(sweep=sweep)

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
        return _params(run.params)

    @admin.display(description="metrics")
    def metrics_summary(self, run: SweepRun) -> str:
        return _metrics_summary(run.metrics)

    @admin.display(description="error")
    def short_error(self, run: SweepRun) -> str:
        if not run.error:
            return EMPTY
        return run.error if len(run.error) <= 80 else run.error[:79] + "…"


# --- schedules ----------------------------------------------------------------------------------


class BacktestScheduleForm(forms.ModelForm):
    """The checks of ``services.schedule_create``, as form errors (a bad cron is a message on
    the cron field, not a 500)."""

    class Meta:
        model = BacktestSchedule
        fields = (
            "name", "user", "enabled", "cron", "lookback_days", "strategy", "params",
            "exchange", "symbol", "timeframe", *SETTINGS_FIELDS,
        )  # fmt: skip

    def clean_cron(self) -> str:
        try:
            spec = services.parse_cron(self.cleaned_data["cron"])
        except AppError as exc:
            raise forms.ValidationError(exc.message) from None
        return " ".join(spec.values())

    def clean_lookback_days(self) -> int:
        days: int = self.cleaned_data["lookback_days"]
        if not 1 <= days <= MAX_LOOKBACK_DAYS:
            raise forms.ValidationError(f"Give a number of days between 1 and {MAX_LOOKBACK_DAYS}.")
        return days

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        strategy = cleaned.get("strategy")
        if strategy is not None and "params" in cleaned:
            self._check_strategy(cleaned, strategy.key)
        if cleaned.get("exchange") and cleaned.get("symbol"):
            try:
                check_symbol(exchange=cleaned["exchange"], symbol=cleaned["symbol"])
            except AppError as exc:
                self.add_error("symbol", exc.message)
        return cleaned

    def _check_strategy(self, cleaned: dict[str, Any], key: str) -> None:
        """The strategy must be usable; its params are stored validated (defaults filled in)."""
        try:
            strategy_class = usable_strategy(key)
        except AppError as exc:
            self.add_error("strategy", exc.message)
            return
        try:
            cleaned["params"] = validated_params(strategy_class, cleaned["params"])
        except AppError as exc:
            problems = [f"{field}: {msg}" for field, msgs in exc.details.items() for msg in msgs]
            self.add_error("params", problems or [exc.message])


@admin.register(BacktestSchedule)
class BacktestScheduleAdmin(admin.ModelAdmin):
    form = BacktestScheduleForm
    list_display = (
        "name", "user", "cron", "enabled", "strategy_id", "market_label", "lookback_days",
        "last_run_at", "created_at",
    )  # fmt: skip
    list_filter = ("enabled", "strategy", "exchange", "timeframe")
    search_fields = ("name", "user__email")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    actions = ("run_now",)
    readonly_fields = ("beat_task", "last_run_at", "recent_runs", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "user", "enabled")}),
        (
            "When (UTC)",
            {"fields": ("cron", "lookback_days", "beat_task", "last_run_at")},
        ),
        ("What", {"fields": ("strategy", "params", "exchange", "symbol", "timeframe")}),
        ("Simulated account", {"fields": SETTINGS_FIELDS}),
        ("History", {"fields": ("recent_runs", "created_at", "updated_at")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj is not None else fieldsets[:-1]  # no history before it exists

    @admin.display(description="beat task")
    def beat_task(self, schedule: BacktestSchedule) -> str:
        task = schedule.periodic_task
        if task is None:
            return EMPTY
        state = "enabled" if task.enabled else "disabled"
        return format_html('<a href="{}">{}</a> ({})', _change_url(task), task.name, state)

    @admin.display(description=f"last {RECENT_RUNS} runs")
    def recent_runs(self, schedule: BacktestSchedule) -> str:
        if schedule.pk is None:
            return EMPTY
        runs = schedule.runs.defer("equity").order_by("-created_at", "-id")[:RECENT_RUNS]
        rows = [
            (
                _change_url(run),
                run.pk,
                _utc(run.created_at),
                run.status,
                f"{_utc(run.start)} → {_utc(run.end)}",
                _metrics_summary(run.metrics),
                run.error,
            )
            for run in runs
        ]
        if not rows:
            return "No runs yet."
        all_runs = _changelist_url(Backtest, schedule__id__exact=schedule.pk)
        return format_html(
            "<table><tr><th>run</th><th>created</th><th>status</th><th>period</th>"
            '<th>results</th><th>error</th></tr>{}</table><p><a href="{}">All runs</a></p>',
            format_html_join(
                "",
                '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
                "<td>{}</td><td>{}</td></tr>",
                rows,
            ),
            all_runs,
        )

    def save_model(
        self, request: HttpRequest, obj: BacktestSchedule, form: Any, change: bool
    ) -> None:
        # The form has checked the cron; the beat task follows the row in the same transaction.
        with transaction.atomic():
            obj.save()
            services.schedule_sync_beat(schedule=obj)
        logger.info(
            "schedule.saved_in_admin",
            extra=context(schedule_id=obj.pk, staff_id=request.user.pk, cron=obj.cron),
        )

    def delete_model(self, request: HttpRequest, obj: BacktestSchedule) -> None:
        services.schedule_delete(schedule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[BacktestSchedule]) -> None:
        for schedule in queryset.select_related("periodic_task"):
            services.schedule_delete(schedule=schedule)

    @admin.action(description="Run now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[BacktestSchedule]) -> None:
        queued = 0
        for schedule in queryset:
            run = services.schedule_run(schedule_id=schedule.pk)
            if run is None:
                self.message_user(request, f"{schedule.name}: paused, not run.", messages.WARNING)
                continue
            message = f"Run now (admin action): backtest #{run.pk}, {run.status}."
            self.log_change(request, schedule, message)
            if run.status == RunStatus.FAILED:
                self.message_user(request, f"{schedule.name}: {run.error}", messages.ERROR)
            else:
                queued += 1
        if queued:
            self.message_user(request, f"{queued} run(s) queued.", messages.SUCCESS)
