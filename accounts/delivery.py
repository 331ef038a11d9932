"""Delivering the notification outbox through Apprise: at least once, retried with backoff.

One task per channel (``channel_deliver``), so a channel that hangs or refuses delays no other
channel. A delivery claims the channel's due rows with a conditional UPDATE (a lease on
``next_attempt_at`` and a claim token), so two workers never send the same rows; a worker that
dies mid-way leaves them to be sent again when the lease lapses (at least once). At most one
message per channel per ``NOTIFY_MIN_INTERVAL_SECONDS``: what arrives meanwhile waits and goes
out as one batched message. The URL never reaches a log line or an error message.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

import apprise
from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from accounts.models import NotificationChannel, NotificationOutbox
from accounts.notification_kinds import TEST, batch_text, render
from accounts.notifications import deliver_soon
from tradingbot.logconfig import context

logger = logging.getLogger("accounts.delivery")

LEASE_SECONDS = 120
BATCH_MAX = 20
Outbox = NotificationOutbox


@dataclass(frozen=True)
class Sent:
    ok: bool
    error: str = ""


def send(url: str, *, title: str, body: str) -> Sent:
    """Send one message to ``url`` through Apprise; what went wrong, scrubbed of the URL."""
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return Sent(False, "Apprise cannot use this URL")
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        try:
            ok = bool(notifier.notify(title=title, body=body))
        except Exception as error:  # a plugin's bug must not kill the delivery loop
            return Sent(False, scrub(f"{type(error).__name__}: {error}", url))
        log = captured.getvalue()
    return Sent(True) if ok else Sent(False, scrub(log.strip() or "delivery failed", url))


def scrub(text: str, url: str) -> str:
    """``text`` without the URL or any of its longer parts (tokens, passwords, paths)."""
    parts = {url, unquote(url)} | set(re.split(r"[/:@?&=#]+", url.split("://", 1)[-1]))
    for part in sorted((p for p in parts if len(p) >= 6), key=len, reverse=True):
        text = text.replace(part, "••••")
    return text[-500:]


def channel_deliver(*, channel_id: int, force: bool = False) -> str:
    """Send the channel's due rows as one message; what happened (``sent``, ``failed``,
    ``waiting`` for the burst interval, ``busy`` with another worker, ``idle``). ``force``
    ignores the interval (a test message the trader waits for)."""
    channel = NotificationChannel.objects.filter(pk=channel_id).first()
    if channel is None:
        return "idle"
    now = timezone.now()
    wait = _burst_wait(channel, now)
    if wait > 0 and not force:
        if not _due(channel).exists():
            return "idle"
        deliver_soon(channel_id=channel_id, countdown=wait)
        return "waiting"
    if not _lease(channel, now):
        return "busy"  # the worker delivering to it sends what is due when it is done
    try:
        outcome = _deliver_claimed(channel, now)
    finally:
        NotificationChannel.objects.filter(pk=channel.pk).update(delivering_until=None)
    if outcome == "sent" and _due(channel).exists():
        deliver_soon(channel_id=channel.pk, countdown=settings.NOTIFY_MIN_INTERVAL_SECONDS)
    return outcome


def _lease(channel: NotificationChannel, now: datetime) -> bool:
    """One worker at a time per channel: a channel that hangs holds one worker, not all."""
    free = Q(delivering_until__isnull=True) | Q(delivering_until__lt=now)
    until = now + timedelta(seconds=LEASE_SECONDS)
    return bool(
        NotificationChannel.objects.filter(free, pk=channel.pk).update(delivering_until=until)
    )


def _deliver_claimed(channel: NotificationChannel, now: datetime) -> str:
    rows = _claim(channel, now)
    if not rows:
        return "idle"
    title, body = batch_text([(row.title, row.body) for row in rows])
    started = time.monotonic()
    result = send(channel.url.reveal(), title=title, body=body)
    _record(channel, rows, result, elapsed=time.monotonic() - started)
    return "sent" if result.ok else "failed"


def _due(channel: NotificationChannel) -> QuerySet[NotificationOutbox]:
    return Outbox.objects.filter(
        channel=channel, status=Outbox.Status.PENDING, next_attempt_at__lte=timezone.now()
    )


def _burst_wait(channel: NotificationChannel, now: datetime) -> float:
    if channel.last_sent_at is None:
        return 0.0
    since = (now - channel.last_sent_at).total_seconds()
    return max(0.0, settings.NOTIFY_MIN_INTERVAL_SECONDS - since)


def _claim(channel: NotificationChannel, now: datetime) -> list[NotificationOutbox]:
    due = _due(channel)
    ids = list(due.order_by("id").values_list("id", flat=True)[:BATCH_MAX])
    if not ids:
        return []
    token = uuid.uuid4().hex
    lease = now + timedelta(seconds=LEASE_SECONDS)
    due.filter(pk__in=ids).update(next_attempt_at=lease, claim=token)
    return list(Outbox.objects.filter(claim=token).order_by("id"))


def _record(
    channel: NotificationChannel, rows: list[NotificationOutbox], result: Sent, *, elapsed: float
) -> None:
    ids = [row.pk for row in rows]
    now = timezone.now()
    if result.ok:
        Outbox.objects.filter(pk__in=ids).update(
            status=Outbox.Status.SENT, sent_at=now, attempts=F("attempts") + 1, last_error=""
        )
        NotificationChannel.objects.filter(pk=channel.pk).update(
            status=NotificationChannel.Status.OK, failure_count=0, last_error="", last_sent_at=now
        )
    else:
        _record_failure(channel, rows, result.error, now)
    logger.info(
        "notify.delivery",
        extra=context(
            channel_id=channel.pk, user_id=channel.user_id, outbox_ids=ids,
            outcome="sent" if result.ok else "failed", elapsed_ms=round(elapsed * 1000),
        ),
    )  # fmt: skip


def _record_failure(
    channel: NotificationChannel, rows: list[NotificationOutbox], error: str, now: datetime
) -> None:
    failures = channel.failure_count + 1
    failing = failures >= settings.NOTIFY_FAILING_AFTER
    NotificationChannel.objects.filter(pk=channel.pk).update(
        failure_count=failures, last_error=error,
        status=NotificationChannel.Status.FAILING if failing else channel.status,
    )  # fmt: skip
    attempts = max(row.attempts for row in rows) + 1
    delay = backoff_seconds(attempts)
    for row in rows:
        gave_up = row.attempts + 1 >= settings.NOTIFY_MAX_ATTEMPTS
        Outbox.objects.filter(pk=row.pk).update(
            attempts=row.attempts + 1, last_error=error, claim="",
            status=Outbox.Status.FAILED if gave_up else Outbox.Status.PENDING,
            next_attempt_at=now + timedelta(seconds=delay),
        )  # fmt: skip
    deliver_soon(channel_id=channel.pk, countdown=delay)


def backoff_seconds(attempts: int) -> float:
    """``NOTIFY_BACKOFF_SECONDS`` doubled per attempt, capped, with up to 10 % jitter."""
    base = min(settings.NOTIFY_BACKOFF_SECONDS * 2 ** (attempts - 1),
               settings.NOTIFY_MAX_BACKOFF_SECONDS)  # fmt: skip
    return base * (1 + random.random() / 10)  # noqa: S311 - jitter, not security


def deliver_due() -> int:
    """The minutely sweep: send the delivery task for every channel with due rows (a message
    lost with the broker, a retry whose task was lost); how many channels."""
    now = timezone.now()
    channel_ids = set(
        Outbox.objects.filter(status=Outbox.Status.PENDING, next_attempt_at__lte=now)
        .values_list("channel_id", flat=True)
        .distinct()
    )
    for channel_id in channel_ids:
        deliver_soon(channel_id=channel_id)
    return len(channel_ids)


def channel_send_test(*, channel: NotificationChannel) -> NotificationOutbox:
    """Queue a test message through the outbox and deliver it now (whatever the burst
    interval: the trader waits for it); the row as it ended."""
    title, body = render(TEST, {"channel": channel.name})
    row = Outbox.objects.create(
        channel=channel, key=f"test-{uuid.uuid4().hex}", kind=TEST, title=title, body=body
    )
    channel_deliver(channel_id=channel.pk, force=True)
    row.refresh_from_db()
    return row
