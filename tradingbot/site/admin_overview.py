"""Reads for the staff overview on the admin index: the bots at work and what went wrong lately.

Staff see every user's bots and runs, so nothing here is scoped to an owner: the admin index that
shows it is reachable by active staff only, and each part is shown only to staff who may view
that model (``overview_for``). Every list is capped; the panel links to the full admin lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Q, Value, When
from django.urls import reverse
from django.utils import timezone

from backtests.models import Backtest, RunStatus, Sweep
from bots.models import Bot, BotEvent

RECENT = timedelta(hours=24)
ROWS = 20  # rows per list on the panel
ACTIVE_STATUSES = (Bot.Status.ERROR, Bot.Status.STOPPING, Bot.Status.RUNNING)
PROBLEM_LEVELS = (BotEvent.Level.ERROR, BotEvent.Level.WARNING)


def bots_active(*, limit: int = ROWS) -> list[Bot]:
    """Bots in error, stopping, degraded (running while their exchange keeps failing) or running,
    in that order; the stalest tick first within each (a bot that has not ticked for long is the
    one to look at)."""
    priority = Case(
        When(status=Bot.Status.ERROR, then=Value(0)),
        When(status=Bot.Status.STOPPING, then=Value(1)),
        When(degraded_since__isnull=False, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    return list(
        Bot.objects.filter(status__in=ACTIVE_STATUSES)
        .select_related("user")
        .annotate(priority=priority)
        .order_by("priority", F("last_tick_at").asc(nulls_first=True), "id")[:limit]
    )


def bot_status_counts() -> dict[str, int]:
    """How many bots are in each state the staff act on (every one of them, zero included): a
    degraded bot is counted as degraded, not as running."""
    counts = Bot.objects.filter(status__in=ACTIVE_STATUSES).aggregate(
        error=Count("id", filter=Q(status=Bot.Status.ERROR)),
        stopping=Count("id", filter=Q(status=Bot.Status.STOPPING)),
        degraded=Count("id", filter=Q(status=Bot.Status.RUNNING, degraded_since__isnull=False)),
        running=Count("id", filter=Q(status=Bot.Status.RUNNING, degraded_since__isnull=True)),
    )
    return {state: int(count) for state, count in counts.items()}


def bot_problems_recent(*, since: datetime, limit: int = ROWS) -> list[BotEvent]:
    """Bot events at level error or warning since ``since``, newest first.

    Newest by id (ids grow with time): ``bot_events`` has no index on its time alone, and
    ordering by time would sort every event of the window.
    """
    return list(
        BotEvent.objects.filter(level__in=PROBLEM_LEVELS, time__gte=since)
        .select_related("bot", "bot__user")
        .order_by("-id")[:limit]
    )


def backtests_failed_recent(*, since: datetime, limit: int = ROWS) -> list[Backtest]:
    """Backtests that failed since ``since``, newest first (without their equity curves)."""
    return list(
        Backtest.objects.filter(status=RunStatus.FAILED, finished_at__gte=since)
        .select_related("user")
        .defer("equity")
        .order_by("-finished_at", "-id")[:limit]
    )


def sweeps_failed_recent(*, since: datetime, limit: int = ROWS) -> list[Sweep]:
    """Sweeps finished since ``since`` that failed, or had some combinations fail."""
    return list(
        Sweep.objects.filter(
            Q(status=RunStatus.FAILED) | Q(failed_count__gt=0), finished_at__gte=since
        )
        .select_related("user")
        .order_by("-finished_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class ProblemList:
    """One list of what went wrong: ``items`` drawn by the ``row`` template, and a link to the
    whole admin list when there is one."""

    list_id: str
    caption: str
    items: list[Any]
    row: str
    more_url: str = ""
    more_text: str = ""


@dataclass(frozen=True)
class Overview:
    since: datetime
    bot_counts: dict[str, int] | None = None  # None: the viewer may not see that part
    bots: list[Bot] = field(default_factory=list)
    problems: list[ProblemList] = field(default_factory=list)  # the lists the viewer may see


def overview_for(*, user: Any, now: datetime | None = None) -> Overview:
    """The overview parts that ``user`` (active staff) may view, over the last ``RECENT``."""
    since = (now or timezone.now()) - RECENT
    sees_bots = _may_view(user, "bots", "bot")
    return Overview(
        since=since,
        bot_counts=bot_status_counts() if sees_bots else None,
        bots=bots_active() if sees_bots else [],
        problems=_problem_lists(user, since),
    )


def _problem_lists(user: Any, since: datetime) -> list[ProblemList]:
    lists = []
    if _may_view(user, "bots", "botevent"):
        lists.append(ProblemList(
            "overview-bot-problems", "Bot errors and warnings, last 24 hours",
            bot_problems_recent(since=since), "admin/_overview_bot_problem.html",
            reverse("admin:bots_botevent_changelist") + "?level__exact=error", "All error events",
        ))  # fmt: skip
    if _may_view(user, "backtests", "backtest"):
        lists.append(ProblemList(
            "overview-backtests-failed", "Failed backtests, last 24 hours",
            backtests_failed_recent(since=since), "admin/_overview_failed_backtest.html",
            reverse("admin:backtests_backtest_changelist") + "?status__exact=failed",
            "All failed backtests",
        ))  # fmt: skip
    if _may_view(user, "backtests", "sweep"):
        lists.append(ProblemList(
            "overview-sweeps-failed", "Sweeps with failures, last 24 hours",
            sweeps_failed_recent(since=since), "admin/_overview_failed_sweep.html",
        ))  # fmt: skip
    return lists


def _may_view(user: Any, app_label: str, model_name: str) -> bool:
    # As the admin decides: the view or the change permission lets one see the list.
    return bool(
        user.has_perm(f"{app_label}.view_{model_name}")
        or user.has_perm(f"{app_label}.change_{model_name}")
    )
