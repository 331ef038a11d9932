"""Scheduled backtests: a saved configuration that beat re-runs over the last N days.

Each schedule owns one django-celery-beat ``PeriodicTask`` (crontab, UTC) that calls
``run_scheduled_backtest_task(schedule_id)``. The services keep the two in step: creating,
editing, enabling and deleting a schedule does the same to its periodic task. Every run is an
ordinary :class:`~backtests.models.Backtest` pointing back at the schedule; a run that cannot
even start (the period has no candles, the strategy was disabled) is kept as a failed backtest
saying why, so the history shows every firing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from celery.schedules import ParseException, crontab
from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.models import User
from backtests.models import CONFIG_FIELDS, Backtest, BacktestSchedule, RunStatus
from backtests.schedule_status import schedule_period
from backtests.services.backtests import backtest_create
from backtests.services.config import run_spec_check
from backtests.spec import RunSpec
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

SCHEDULED_TASK = "backtests.tasks.run_scheduled_backtest_task"
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
MAX_LOOKBACK_DAYS = 3650


# Numbers, names (jan, mon), ranges, steps and lists only: celery reads just the first three
# letters of a name, so "mon#2" would quietly run every Monday instead of being refused.
CRON_FIELD_PATTERN = re.compile(r"[0-9A-Za-z*/,-]+")


def parse_cron(expression: str) -> dict[str, str]:
    """``"0 2 * * *"`` → the five crontab fields; AppError ``invalid_cron`` when malformed."""
    fields = expression.split() if isinstance(expression, str) else []
    if len(fields) != len(CRON_FIELDS):
        raise _invalid_cron(
            "give five fields: minute hour day-of-month month day-of-week, e.g. 0 2 * * * "
            "(every day at 02:00 UTC) or 30 4 * * mon (Mondays at 04:30 UTC)"
        )
    spec = dict(zip(CRON_FIELDS, fields, strict=True))
    for name, value in spec.items():
        if not CRON_FIELD_PATTERN.fullmatch(value):
            raise _invalid_cron(f"{value!r}: use numbers, names, '*', '-', '/' and ',' only")
        # Beat's columns are bounded: a longer field would be a database error, not a 400.
        if len(value) > _column_length(CrontabSchedule, name):
            raise _invalid_cron(f"the {name.replace('_', '-')} field is too long")
    if len(" ".join(fields)) > _column_length(BacktestSchedule, "cron"):
        raise _invalid_cron("the expression is too long")
    try:
        crontab(**spec)
    except (ValueError, TypeError, IndexError, ParseException) as exc:
        raise _invalid_cron(str(exc).rstrip(".")) from None
    return spec


def _column_length(model: type[models.Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, models.CharField)
    assert field.max_length is not None
    return field.max_length


def _invalid_cron(reason: str) -> AppError:
    return AppError(
        "invalid_cron", f"The cron expression is invalid: {reason}.", details={"cron": [reason]}
    )


def schedule_create(
    *,
    user: User,
    spec: RunSpec,
    name: str,
    cron: str,
    lookback_days: int,
    enabled: bool = True,
) -> BacktestSchedule:
    """Store a schedule and its periodic task (both or neither)."""
    timing = parse_cron(cron)
    _check_lookback(lookback_days)
    checked = run_spec_check(spec=spec)
    if BacktestSchedule.objects.filter(user=user, name=name).exists():
        raise _duplicate_name(name)
    with _unique_name(name), transaction.atomic():
        schedule = BacktestSchedule.objects.create(
            user=user,
            name=name,
            cron=" ".join(timing.values()),
            lookback_days=lookback_days,
            enabled=enabled,
            **checked.fields,
        )
        schedule_sync_beat(schedule=schedule)
    logger.info(
        "schedule.created",
        extra=context(schedule_id=schedule.pk, user_id=user.pk, cron=schedule.cron),
    )
    return schedule


def _duplicate_name(name: str) -> AppError:
    return AppError(
        "duplicate_name",
        f"You already have a schedule named {name!r}.",
        status=409,
        details={"name": ["already used"]},
    )


@contextmanager
def _unique_name(name: str) -> Iterator[None]:
    """The check above can race with a concurrent request: the constraint has the last word."""
    try:
        yield
    except IntegrityError as exc:
        if "backtest_schedule_name" not in str(exc) and "UNIQUE" not in str(exc).upper():
            raise
        raise _duplicate_name(name) from None


def _check_lookback(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_LOOKBACK_DAYS:
        raise AppError(
            "validation_error",
            "The request has invalid fields.",
            details={"lookback_days": [f"an integer between 1 and {MAX_LOOKBACK_DAYS}"]},
        )


def schedule_update(
    *,
    schedule: BacktestSchedule,
    name: str | None = None,
    cron: str | None = None,
    lookback_days: int | None = None,
    enabled: bool | None = None,
) -> BacktestSchedule:
    """Rename, re-time, re-size or pause a schedule; its periodic task follows."""
    if cron is not None:
        schedule.cron = " ".join(parse_cron(cron).values())
    if lookback_days is not None:
        _check_lookback(lookback_days)
        schedule.lookback_days = lookback_days
    if name is not None and name != schedule.name:
        if BacktestSchedule.objects.filter(user_id=schedule.user_id, name=name).exists():
            raise _duplicate_name(name)
        schedule.name = name
    if enabled is not None:
        schedule.enabled = enabled
    with _unique_name(schedule.name), transaction.atomic():
        schedule.save()
        schedule_sync_beat(schedule=schedule)
    logger.info(
        "schedule.updated",
        extra=context(schedule_id=schedule.pk, cron=schedule.cron, enabled=schedule.enabled),
    )
    return schedule


def schedule_sync_beat(*, schedule: BacktestSchedule) -> None:
    """Create or update the schedule's ``PeriodicTask`` to match it (call inside a transaction)."""
    spec = parse_cron(schedule.cron)
    timing, _ = CrontabSchedule.objects.get_or_create(**spec, timezone="UTC")
    fields = {
        "name": f"backtest-schedule-{schedule.pk}",
        "task": SCHEDULED_TASK,
        "crontab": timing,
        "kwargs": json.dumps({"schedule_id": schedule.pk}),
        "queue": settings.BACKTESTS_QUEUE,
        "enabled": schedule.enabled,
        "description": f"Backtest schedule {schedule.name!r} of user {schedule.user_id}",
    }
    task = schedule.periodic_task
    if task is None:
        task = PeriodicTask.objects.create(**fields)
        BacktestSchedule.objects.filter(pk=schedule.pk).update(periodic_task=task)
        schedule.periodic_task = task
        return
    for field, value in fields.items():
        setattr(task, field, value)
    task.save()


def schedule_delete(*, schedule: BacktestSchedule) -> None:
    """Delete the schedule and its periodic task; its past runs stay, as plain backtests."""
    schedule_id = schedule.pk
    with transaction.atomic():
        task = schedule.periodic_task
        schedule.delete()
        if task is not None:
            task.delete()
    logger.info("schedule.deleted", extra=context(schedule_id=schedule_id))


def schedule_run(*, schedule_id: int, now: datetime | None = None) -> Backtest | None:
    """One firing: a backtest of the schedule's configuration over the last ``lookback_days``
    (up to the last closed candle). None when the schedule is gone or paused."""
    schedule = BacktestSchedule.objects.select_related("user").filter(pk=schedule_id).first()
    if schedule is None or not schedule.enabled:
        logger.info("schedule.skipped", extra=context(schedule_id=schedule_id))
        return None
    fired_at = now or timezone.now()
    start, end = schedule_period(schedule, fired_at)
    BacktestSchedule.objects.filter(pk=schedule.pk).update(last_run_at=fired_at)
    try:
        return backtest_create(
            user=schedule.user, spec=schedule.run_spec(), start=start, end=end, schedule=schedule
        )
    except AppError as exc:
        return _failed_run(schedule, start, end, exc)


def _failed_run(
    schedule: BacktestSchedule, start: datetime, end: datetime, exc: AppError
) -> Backtest:
    """Keep a firing that could not start in the history, as a failed backtest saying why."""
    run = Backtest.objects.create(
        user=schedule.user,
        schedule=schedule,
        start=start,
        end=end,
        status=RunStatus.FAILED,
        error=exc.message,
        finished_at=timezone.now(),
        **{field: getattr(schedule, field) for field in CONFIG_FIELDS},
    )
    logger.warning(
        "schedule.run_refused",
        extra=context(schedule_id=schedule.pk, backtest_id=run.pk, code=exc.code),
    )
    return run
