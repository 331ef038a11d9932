"""Scheduled notifications: each channel's daily summary at the time its owner picked (in the
owner's time zone), and the staff's system alerts. Beat runs both every minute.

Accounts imports no app above it: the apps register what goes into a summary
(``register_summary_part``, e.g. the bots' results of the day) and the system checks that can
raise an alert (``register_system_check``, e.g. the bots' exchange errors), in their
``AppConfig.ready()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import NotificationChannel, NotificationOutbox, User
from accounts.notification_kinds import render
from accounts.notifications import deliver_soon, notify
from tradingbot.logconfig import context

logger = logging.getLogger("accounts.notifications")

# (user id, the local day's start and end as aware datetimes) -> lines of the summary
SummaryPart = Callable[[int, datetime, datetime], list[str]]
# () -> what is wrong, or None
SystemCheck = Callable[[], str | None]
_summary_parts: list[SummaryPart] = []
_system_checks: dict[str, SystemCheck] = {}
INCIDENT_KEY = "notify:incident:"


def register_summary_part(part: SummaryPart) -> None:
    if part not in _summary_parts:
        _summary_parts.append(part)


def register_system_check(name: str, check: SystemCheck) -> None:
    _system_checks[name] = check


# --- the daily summary -------------------------------------------------------------------------


def _zone(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def daily_summaries_send(*, now: datetime | None = None) -> int:
    """Write the summary of every channel whose time has come today (its owner's day) and
    that has not had today's; how many. Idempotent: a channel is claimed for a day by a
    conditional UPDATE of ``last_summary_on``, and its row's key names the day."""
    now = now or timezone.now()
    due = NotificationChannel.objects.filter(daily_summary_at__isnull=False).select_related("user")
    sent = 0
    for channel in due:
        if "daily_summary" in channel.kinds and _summary_due(channel, now):
            sent += _summary_write(channel, now)
    return sent


def _summary_due(channel: NotificationChannel, now: datetime) -> bool:
    local = now.astimezone(_zone(channel.user))
    assert channel.daily_summary_at is not None
    return local.time() >= channel.daily_summary_at and channel.last_summary_on != local.date()


def _summary_write(channel: NotificationChannel, now: datetime) -> int:
    zone = _zone(channel.user)
    today = now.astimezone(zone).date()
    with transaction.atomic():
        claimed = (
            NotificationChannel.objects.filter(pk=channel.pk)
            .filter(Q(last_summary_on__isnull=True) | Q(last_summary_on__lt=today))
            .update(last_summary_on=today)
        )
        if not claimed:
            return 0
        facts = {"date": today.isoformat(), "message": summary_text(channel.user, today)}
        title, body = render("daily_summary", facts)
        NotificationOutbox.objects.get_or_create(
            channel=channel, key=f"daily-summary-{today.isoformat()}",
            defaults={"kind": "daily_summary", "title": title, "body": body},
        )  # fmt: skip
        transaction.on_commit(lambda: deliver_soon(channel_id=channel.pk))
    logger.info("notify.daily_summary", extra=context(channel_id=channel.pk, day=str(today)))
    return 1


def summary_text(user: User, day: date) -> str:
    zone = _zone(user)
    start = datetime.combine(day, time(0), tzinfo=zone)
    lines: list[str] = []
    for part in _summary_parts:
        lines += part(user.pk, start, start + timedelta(days=1))
    return "\n".join(lines) or "Nothing happened today."


# --- the staff's system alerts -----------------------------------------------------------------


def system_alerts_send() -> list[str]:
    """Run every registered check; a problem opens an incident (kept in the cache) told once to
    every active staff member's channels, keyed by the check and the incident's start. The
    checks that report a problem."""
    problems = []
    for name, check in _system_checks.items():
        try:
            problem = check()
        except Exception:
            logger.exception("notify.system_check_failed", extra=context(check=name))
            continue
        if problem is None:
            cache.delete(INCIDENT_KEY + name)
            continue
        problems.append(name)
        started = cache.get_or_set(INCIDENT_KEY + name, timezone.now().isoformat(), None)
        for staff_id in User.objects.filter(is_staff=True, is_active=True).values_list(
            "pk", flat=True
        ):
            notify(user=staff_id, kind="system_alert", key=f"system-{name}-{started}",
                   facts={"what": name.replace("_", " "), "message": problem})  # fmt: skip
    return problems
