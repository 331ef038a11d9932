"""The outbox and its delivery: idempotency, the caller's transaction, bursts, retries, failing
channels; delivered through Apprise to a real local HTTP server."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts import delivery
from accounts.models import NotificationChannel, NotificationOutbox
from accounts.notifications import channel_create, notify

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel(user: Any, webhook_server: Any) -> NotificationChannel:
    return channel_create(user=user, name="phone", url=webhook_server.url("secret-path-123"))


def fill(user: Any, key: str = "trade-1") -> int:
    facts = {"bot": "Grid", "side": "buy", "qty": "0.1", "symbol": "BTC/USDT", "price": "50000"}
    return notify(user=user, kind="order_filled", key=key, facts=facts)


def test_it_writes_one_row_per_subscribed_channel_and_never_twice_for_a_key(
    user: Any, channel: NotificationChannel, django_capture_on_commit_callbacks: Any
) -> None:
    # given a second channel that does not take fills
    quiet = channel_create(user=user, name="quiet", url="json://127.0.0.1:9/x", kinds=["bot_error"])
    # when the same fill is told twice
    with django_capture_on_commit_callbacks() as callbacks:
        first, second = fill(user), fill(user)
    # then one row, for the subscribed channel only, and one delivery sent
    assert (first, second) == (1, 0)
    rows = NotificationOutbox.objects.all()
    assert [(r.channel_id, r.title, r.body) for r in rows] == [
        (channel.pk, "Grid: buy filled", "0.1 BTC/USDT @ 50000")
    ]
    assert not quiet.outbox.exists()
    assert len(callbacks) == 1


def test_it_writes_nothing_when_the_callers_transaction_rolls_back(
    user: Any, channel: NotificationChannel
) -> None:
    def failing_tick() -> None:
        with transaction.atomic():
            fill(user)
            raise RuntimeError("the tick failed")

    with pytest.raises(RuntimeError):
        failing_tick()
    assert not NotificationOutbox.objects.exists()


def test_the_url_is_encrypted_at_rest_and_masked(channel: NotificationChannel) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT url FROM notification_channels WHERE id = %s", [channel.pk])
        stored = cursor.fetchone()[0]
    assert "secret-path-123" not in stored
    assert str(channel.url) != channel.url.reveal()
    assert channel.url_masked == "json://••••"


def test_it_delivers_a_burst_as_one_message_then_waits_out_the_interval(
    user: Any, channel: NotificationChannel, webhook_server: Any, settings: Any
) -> None:
    # given three fills in a burst
    settings.NOTIFY_MIN_INTERVAL_SECONDS = 60
    for n in range(3):
        fill(user, key=f"trade-{n}")
    # when the channel is delivered
    assert delivery.channel_deliver(channel_id=channel.pk) == "sent"
    # then one message carries all three
    [message] = webhook_server.wait_for(1)
    assert message.path == "/secret-path-123"
    assert message.body["title"] == "Grid: buy filled (+2 more)"
    assert message.body["message"].count("0.1 BTC/USDT @ 50000") == 3
    assert set(NotificationOutbox.objects.values_list("status", flat=True)) == {"sent"}
    # and a fourth within the interval waits for it
    assert delivery.channel_deliver(channel_id=channel.pk) == "idle"  # nothing left to wait for
    fill(user, key="trade-9")
    assert delivery.channel_deliver(channel_id=channel.pk) == "waiting"
    assert NotificationOutbox.objects.get(key="trade-9").status == "pending"


def test_a_failing_channel_backs_off_is_marked_failing_and_recovers(
    user: Any, channel: NotificationChannel, webhook_server: Any, settings: Any, caplog: Any
) -> None:
    # given an endpoint that answers 500
    settings.NOTIFY_FAILING_AFTER = 2
    webhook_server.status = 500
    fill(user)
    caplog.set_level(logging.INFO)
    # when it fails once
    assert delivery.channel_deliver(channel_id=channel.pk) == "failed"
    row = NotificationOutbox.objects.get()
    channel.refresh_from_db()
    # then the row waits for its backoff, the channel is still ok
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=4)
    assert (channel.status, channel.failure_count) == ("ok", 1)
    assert delivery.channel_deliver(channel_id=channel.pk) == "idle"  # not due yet
    # when it fails again once due
    NotificationOutbox.objects.update(next_attempt_at=timezone.now())
    assert delivery.channel_deliver(channel_id=channel.pk) == "failed"
    channel.refresh_from_db()
    assert channel.status == "failing"
    assert "500" in channel.last_error
    assert "secret-path-123" not in channel.last_error
    # when the endpoint is back
    webhook_server.status = 200
    NotificationOutbox.objects.update(next_attempt_at=timezone.now())
    assert delivery.channel_deliver(channel_id=channel.pk) == "sent"
    channel.refresh_from_db()
    assert (channel.status, channel.failure_count, channel.last_error) == ("ok", 0, "")
    # and the log has one line per outcome, with ids and never the URL
    lines = [r for r in caplog.records if r.getMessage() == "notify.delivery"]
    assert [r.outcome for r in lines] == ["failed", "failed", "sent"]
    assert all(r.channel_id == channel.pk for r in lines)
    assert "secret-path-123" not in caplog.text


def test_a_row_gives_up_after_the_last_attempt(
    user: Any, channel: NotificationChannel, webhook_server: Any, settings: Any
) -> None:
    settings.NOTIFY_MAX_ATTEMPTS = 2
    webhook_server.status = 500
    fill(user)
    for _ in range(2):
        NotificationOutbox.objects.update(next_attempt_at=timezone.now())
        delivery.channel_deliver(channel_id=channel.pk)
    row = NotificationOutbox.objects.get()
    assert (row.status, row.attempts) == ("failed", 2)


def test_backoff_doubles_up_to_its_cap(settings: Any) -> None:
    settings.NOTIFY_BACKOFF_SECONDS, settings.NOTIFY_MAX_BACKOFF_SECONDS = 5, 30
    waits = [delivery.backoff_seconds(n) for n in (1, 2, 3, 4)]
    assert [round(w // 1) for w in waits][:2] in ([5, 10], [5, 11])
    assert 30 <= waits[3] <= 33


def test_a_down_channel_is_a_failure_not_an_exception(user: Any) -> None:
    down = channel_create(user=user, name="down", url="json://127.0.0.1:9/x?cto=1")
    fill(user)
    assert delivery.channel_deliver(channel_id=down.pk) == "failed"
    down.refresh_from_db()
    assert "connection error" in down.last_error.lower()


def test_the_sweep_resends_the_due_channels(user: Any, channel: NotificationChannel) -> None:
    fill(user)
    assert delivery.deliver_due() == 1


def test_one_worker_at_a_time_delivers_to_a_channel(
    user: Any, channel: NotificationChannel, webhook_server: Any
) -> None:
    # given another worker delivering to the channel
    fill(user)
    NotificationChannel.objects.filter(pk=channel.pk).update(
        delivering_until=timezone.now() + timedelta(seconds=60)
    )
    # then this one leaves it alone; once that lease lapses (a dead worker), it delivers
    assert delivery.channel_deliver(channel_id=channel.pk) == "busy"
    NotificationChannel.objects.filter(pk=channel.pk).update(
        delivering_until=timezone.now() - timedelta(seconds=1)
    )
    assert delivery.channel_deliver(channel_id=channel.pk) == "sent"
    assert len(webhook_server.wait_for(1)) == 1
    assert NotificationChannel.objects.get(pk=channel.pk).delivering_until is None
