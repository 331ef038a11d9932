"""Backtest schedules in the admin: editable, each save keeping its beat ``PeriodicTask`` in step;
a schedule's form checks what ``services.schedule_create`` checks, as form errors."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from backtests import services
from backtests.admin.common import (
    EMPTY,
    metrics_summary,
    utc_text,
)
from backtests.api.common import RunSpecInput
from backtests.models import ACCOUNT_FIELDS, Backtest, BacktestSchedule, RunStatus
from backtests.services.schedules import MAX_LOOKBACK_DAYS
from backtests.spec import SPEC_FIELDS, split_spec
from tradingbot.admin_utils import change_url, changelist_url
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

RECENT_RUNS = 20  # a schedule's history shown on its page
# The form field a refusal of ``services.run_spec_check`` belongs to (parameters: see _refused).
REFUSED_FIELD = {
    "unknown_strategy": "strategy",
    "strategy_disabled": "strategy",
    "unknown_symbol": "symbol",
    "invalid_leverage": "leverage",
    "unsupported_margin_mode": "margin_mode",
}


class BacktestScheduleForm(forms.ModelForm):
    """The checks of ``services.schedule_create``, as form errors (a bad cron is a message on
    the cron field, not a 500): the cron and the look-back, then the run specification, checked
    as the API checks it (``RunSpecInput``) and then by ``services.run_spec_check``."""

    class Meta:
        model = BacktestSchedule
        fields = (
            "name", "user", "enabled", "cron", "lookback_days", "strategy", "params",
            "exchange", "symbol", "timeframe", *ACCOUNT_FIELDS,
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
        if cleaned.keys() >= SPEC_FIELDS:  # no field of the specification is refused already
            self._check_spec(cleaned)
        return cleaned

    def _check_spec(self, cleaned: dict[str, Any]) -> None:
        """Store the parameters validated (defaults filled in), as the service would."""
        values = {name: cleaned[name] for name in SPEC_FIELDS} | {
            "strategy": cleaned["strategy"].key
        }
        serializer = RunSpecInput(data=values)
        if not serializer.is_valid():
            for name, problems in serializer.errors.items():
                self.add_error(name if name in self.fields else None, list(map(str, problems)))
            return
        spec, _ = split_spec(serializer.validated_data)
        try:
            cleaned["params"] = services.run_spec_check(spec=spec).fields["params"]
        except AppError as exc:
            self._refused(exc)

    def _refused(self, error: AppError) -> None:
        if error.code == "spot_market":  # a leverage, or a short in the parameters
            field = "leverage" if "leverage" in error.details else "params"
            self.add_error(field, error.message)
            return
        if error.code != "invalid_params":
            self.add_error(REFUSED_FIELD.get(error.code), error.message)
            return
        problems = [f"{field}: {msg}" for field, msgs in error.details.items() for msg in msgs]
        self.add_error("params", problems or [error.message])


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
        ("When (UTC)", {"fields": ("cron", "lookback_days", "beat_task", "last_run_at")}),
        ("What", {"fields": ("strategy", "params", "exchange", "symbol", "timeframe")}),
        ("Simulated account", {"fields": ACCOUNT_FIELDS}),
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
        return format_html('<a href="{}">{}</a> ({})', change_url(task), task.name, state)

    @admin.display(description=f"last {RECENT_RUNS} runs")
    def recent_runs(self, schedule: BacktestSchedule) -> str:
        if schedule.pk is None:
            return EMPTY
        runs = schedule.runs.defer("equity").order_by("-created_at", "-id")[:RECENT_RUNS]
        rows = [
            (
                change_url(run),
                run.pk,
                utc_text(run.created_at),
                run.status,
                f"{utc_text(run.start)} → {utc_text(run.end)}",
                metrics_summary(run.metrics),
                run.error,
            )
            for run in runs
        ]
        if not rows:
            return "No runs yet."
        all_runs = changelist_url(Backtest, schedule__id__exact=schedule.pk)
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
