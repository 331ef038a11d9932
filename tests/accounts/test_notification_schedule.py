"""The daily summary at the trader's time in their zone, once a day; staff alerts once per
incident."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest
from django.core.cache import cache

from accounts import summaries
from accounts.models import NotificationOutbox
from accounts.notifications import channel_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def at(hour: int, minute: int, day: int = 7) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_the_daily_summary_goes_at_the_traders_time_once_a_day(user: Any) -> None:
    # given a trader in Paris (UTC+1 in December) who wants it at 21:30
    user.time_zone = "Europe/Paris"
    user.save()
    channel_create(
        user=user, name="phone", url="json://127.0.0.1:9/x", daily_summary_at=time(21, 30)
    )
    channel_create(user=user, name="no", url="json://127.0.0.1:9/y", kinds=["order_filled"],
                   daily_summary_at=time(21, 30))  # fmt: skip
    # then nothing before 21:30 Paris, one at 21:30, none again that day, one the next day
    assert summaries.daily_summaries_send(now=at(20, 29)) == 0
    assert summaries.daily_summaries_send(now=at(20, 30)) == 1
    assert summaries.daily_summaries_send(now=at(22, 59)) == 0
    assert summaries.daily_summaries_send(now=at(23, 0)) == 0  # 00:00 on the 8th in Paris
    assert summaries.daily_summaries_send(now=at(20, 31, day=8)) == 1
    rows = list(NotificationOutbox.objects.order_by("id"))
    assert [r.key for r in rows] == ["daily-summary-2026-12-07", "daily-summary-2026-12-08"]
    assert rows[0].title == "Daily summary 2026-12-07"
    assert "0 bot(s) running." in rows[0].body


def test_a_system_alert_reaches_staff_once_per_incident(
    staff: Any, user: Any, monkeypatch: Any
) -> None:
    # given staff and a trader with channels, and a check that fails, then clears, then fails
    cache.delete(summaries.INCIDENT_KEY + "broker")
    channel_create(user=staff, name="ops", url="json://127.0.0.1:9/x")
    channel_create(user=user, name="phone", url="json://127.0.0.1:9/y")
    problem: list[str | None] = ["The broker is slow."]
    monkeypatch.setattr(summaries, "_system_checks", {"broker": lambda: problem[0]})
    # when it is checked twice while failing, once cleared, once failing again
    assert summaries.system_alerts_send() == ["broker"]
    assert summaries.system_alerts_send() == ["broker"]
    problem[0] = None
    assert summaries.system_alerts_send() == []
    problem[0] = "The broker is slow again."
    summaries.system_alerts_send()
    # then two alerts, both to the staff member only
    rows = list(NotificationOutbox.objects.order_by("id"))
    assert [(r.channel.user_id, r.title) for r in rows] == [(staff.pk, "System alert: broker")] * 2
    assert [r.body for r in rows] == ["The broker is slow.", "The broker is slow again."]


def test_a_trader_cannot_subscribe_to_system_alerts_but_staff_get_them_by_default(staff: Any):
    trader = UserFactory()
    assert "system_alert" in channel_create(user=staff, name="a", url="json://h/x").kinds
    assert "system_alert" not in channel_create(user=trader, name="a", url="json://h/x").kinds
