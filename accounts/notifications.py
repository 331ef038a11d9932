"""Notifications: the user's channels, and ``notify``, which every app calls to tell a user of
an event.

``notify`` writes one outbox row per subscribed channel in the caller's transaction (so an event
rolled back is never told, and one committed always is), and sends the delivery task after
commit. It never raises and never touches the network: a trading tick may call it freely.
Delivery is ``accounts.delivery``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import apprise
from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import NotificationChannel, NotificationOutbox, User
from accounts.notification_kinds import KINDS, TEST, render
from tradingbot.errors import AppError
from tradingbot.logconfig import context
from tradingbot.tasks import enqueue

logger = logging.getLogger("accounts.notifications")

DELIVER_TASK = "accounts.tasks.deliver_channel_task"


# --- telling a user ------------------------------------------------------------------------------


def notify(
    *, user: User | int, kind: str, key: str, facts: dict[str, Any] | None = None,
    title: str = "", body: str = "", data: dict[str, Any] | None = None,
) -> int:  # fmt: skip
    """Queue a ``kind`` notification for every channel of ``user`` that gets it; the number of
    rows written. ``key`` identifies the event: the same key again writes nothing new. The
    text is ``title``/``body`` if given, else the kind's template filled with ``facts``."""
    user_id = user if isinstance(user, int) else user.pk
    try:
        return _notify(user_id, kind, key, facts or {}, (title, body), data or {})
    except Exception:  # never into a trading tick: the event itself is what matters
        logger.exception("notify.failed", extra=context(user_id=user_id, kind=kind, key=key))
        return 0


def _notify(
    user_id: int, kind: str, key: str, facts: dict[str, Any], text: tuple[str, str],
    data: dict[str, Any],
) -> int:  # fmt: skip
    channels = [
        c for c in NotificationChannel.objects.filter(user_id=user_id).only("id", "kinds")
        if kind == TEST or kind in c.kinds
    ]  # fmt: skip
    if not channels:
        return 0
    title, body = text if text[0] else render(kind, facts)
    written = []
    for channel in channels:
        if _write_row(channel.pk, kind, key, title, body, data):
            written.append(channel.pk)
    for channel_id in written:
        transaction.on_commit(partial(deliver_soon, channel_id=channel_id))
    return len(written)


def _write_row(
    channel_id: int, kind: str, key: str, title: str, body: str, data: dict[str, Any]
) -> bool:
    """One outbox row in a savepoint, so that a duplicate key leaves the caller's transaction
    usable; False when the row was there already."""
    if NotificationOutbox.objects.filter(channel_id=channel_id, key=key).exists():
        return False
    try:
        with transaction.atomic():
            NotificationOutbox.objects.create(
                channel_id=channel_id, key=key[:200], kind=kind, title=title, body=body, data=data
            )
    except IntegrityError:  # written by a concurrent caller meanwhile
        return False
    return True


def deliver_soon(*, channel_id: int, countdown: float = 0) -> None:
    """Send the channel's delivery task. A broker that is down only delays delivery: the
    minutely sweep sends it again."""
    try:
        enqueue(DELIVER_TASK, channel_id, queue=settings.NOTIFY_QUEUE, countdown=countdown,
                expires=3600)  # fmt: skip
    except Exception:
        logger.warning("notify.enqueue_failed", extra=context(channel_id=channel_id))


# --- channels --------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """The scheme of a URL Apprise can send to; ``invalid_url`` otherwise (the message never
    repeats the URL: it is a secret)."""
    if not apprise.Apprise.instantiate(url):
        raise AppError(
            "invalid_url", "Apprise cannot use this URL: check its scheme and parts.",
            details={"url": ["Not a URL Apprise supports."]},
        )  # fmt: skip
    return url.split("://", 1)[0].lower()


def check_kinds(kinds: list[str], *, user: User) -> list[str]:
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise AppError("unknown_kind", f"Unknown event kind: {', '.join(unknown)}.",
                       details={"kinds": [f"Choose from {', '.join(KINDS)}."]})  # fmt: skip
    if "system_alert" in kinds and not user.is_staff:
        raise AppError("unknown_kind", "System alerts are for staff only.",
                       details={"kinds": ["system_alert is for staff only."]})  # fmt: skip
    return [k for k in KINDS if k in kinds]


def default_kinds(user: User) -> list[str]:
    return [k for k in KINDS if k != "system_alert" or user.is_staff]


@transaction.atomic
def channel_create(
    *, user: User, name: str, url: str, kinds: list[str] | None = None,
    daily_summary_at: Any = None,
) -> NotificationChannel:  # fmt: skip
    scheme = check_url(url)
    kinds = default_kinds(user) if kinds is None else check_kinds(kinds, user=user)
    if NotificationChannel.objects.filter(user=user, name=name).exists():
        raise AppError("duplicate_name", f"You already have a channel named {name!r}.", 409)
    channel = NotificationChannel.objects.create(
        user=user, name=name, url=url, scheme=scheme, kinds=kinds,
        daily_summary_at=daily_summary_at,
    )  # fmt: skip
    logger.info("notify.channel_created",
                extra=context(user_id=user.pk, channel_id=channel.pk, scheme=scheme))  # fmt: skip
    return channel


@transaction.atomic
def channel_update(*, channel: NotificationChannel, **fields: Any) -> NotificationChannel:
    """Change the name, URL, kinds or summary time; a new URL makes the channel ``ok`` again."""
    if "url" in fields:
        channel.scheme = check_url(fields["url"])
        channel.url = fields["url"]
        channel.status, channel.failure_count, channel.last_error = "ok", 0, ""
    if "kinds" in fields:
        channel.kinds = check_kinds(fields["kinds"], user=channel.user)
    if "name" in fields and fields["name"] != channel.name:
        if NotificationChannel.objects.filter(user=channel.user, name=fields["name"]).exists():
            raise AppError("duplicate_name", "You already have a channel of that name.", 409)
        channel.name = fields["name"]
    if "daily_summary_at" in fields:
        channel.daily_summary_at = fields["daily_summary_at"]
    channel.save()
    return channel


def channel_delete(*, channel: NotificationChannel) -> None:
    logger.info("notify.channel_deleted",
                extra=context(user_id=channel.user_id, channel_id=channel.pk))  # fmt: skip
    channel.delete()
