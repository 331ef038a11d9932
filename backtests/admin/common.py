"""What the backtests' admin pages share: how values are shown, and the behaviour of the rows
workers write (read-only, acted on through the services)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from backtests.models import PeriodRun, RunStatus
from tradingbot.errors import AppError

EMPTY = "—"


# --- formatting ---------------------------------------------------------------------------------


def utc_text(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else EMPTY


def percent_text(fraction: float | None) -> str:
    return EMPTY if fraction is None else f"{fraction * 100:+.2f} %"


def number_text(value: float | None) -> str:
    return EMPTY if value is None else f"{value:,.2f}"


def epoch_ms_text(ms: int) -> str:
    return utc_text(datetime.fromtimestamp(ms / 1000, tz=UTC))


def params_text(params: dict[str, Any]) -> str:
    # Sorted: PostgreSQL's jsonb does not keep the order the strategy declares them in.
    return ", ".join(f"{name}={value}" for name, value in sorted(params.items()))


def metrics_summary(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return EMPTY
    return (
        f"return {percent_text(metrics.get('total_return'))} · "
        f"sharpe {number_text(metrics.get('sharpe'))} · "
        f"max dd {percent_text(metrics.get('max_drawdown'))} · "
        f"trades {metrics.get('trade_count', EMPTY)}"
    )


# --- shared behaviour ---------------------------------------------------------------------------


class ResultAdmin(admin.ModelAdmin):
    """Rows written by workers: viewable and deletable, never added or edited by hand. Actions
    that start or stop runs need the model's add / change permission (as the services would).

    A subclass names its services: ``rerun_run``, ``cancel_run`` and ``delete_run``."""

    def rerun_run(self, run: Any) -> Any:
        raise NotImplementedError

    def cancel_run(self, run: Any) -> Any:
        raise NotImplementedError

    def delete_run(self, run: Any) -> None:
        raise NotImplementedError

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

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_run(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for run in queryset:
            self.delete_run(run)

    def rerun_each(self, request: HttpRequest, runs: Iterable[PeriodRun]) -> None:
        """Re-run each run (checked again, as if new), logging both ends of each re-run."""
        kind, created = self.opts.verbose_name, 0
        for run in runs:
            try:
                rerun = self.rerun_run(run)
            except AppError as exc:
                self.message_user(request, f"{run}: {exc.message}", messages.ERROR)
                continue
            self.log_change(request, run, f"Re-run (admin action) as {kind} #{rerun.pk}.")
            self.log_addition(request, rerun, f"Re-run of {kind} #{run.pk} (admin action).")
            created += 1
        self._report(request, f"{kind}(s) queued again", created)

    def cancel_each(self, request: HttpRequest, runs: Iterable[PeriodRun]) -> None:
        """Cancel each active run; a finished one is left as it is, and counted apart."""
        cancelled = finished = 0
        for run in runs:
            was_active = run.is_active
            run = self.cancel_run(run)
            if was_active and run.status == RunStatus.CANCELLED:
                self.log_change(request, run, "Cancelled (admin action).")
                cancelled += 1
            else:
                finished += 1
        self._report(request, f"{self.opts.verbose_name}(s) cancelled", cancelled)
        if finished:
            self.message_user(
                request, f"{finished} had already finished; left as they were.", messages.WARNING
            )

    def _report(self, request: HttpRequest, done: str, count: int) -> None:
        if count:
            self.message_user(request, f"{count} {done}.", messages.SUCCESS)


class RunColumns:
    """Strategy, market and period columns shared by backtests, sweeps and optimisations."""

    @admin.display(description="strategy", ordering="strategy")
    def strategy_key(self, run: PeriodRun) -> str:
        return run.strategy_id

    @admin.display(description="market")
    def market(self, run: PeriodRun) -> str:
        return run.market_label

    @admin.display(description="period (UTC)", ordering="start")
    def period(self, run: PeriodRun) -> str:
        return f"{utc_text(run.start)} → {utc_text(run.end)}"
