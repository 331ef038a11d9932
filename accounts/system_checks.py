"""The platform's own system checks for staff alerts: Celery workers and queue backlogs (what
``/metrics`` and the health check already read)."""

from __future__ import annotations

from django.conf import settings

from tradingbot import metrics
from tradingbot.celery import QUEUES, app


def workers_down() -> str | None:
    """A platform queue that no worker consumes."""
    answered = app.control.inspect(timeout=1.0).active_queues() or {}
    consumed = {queue["name"] for queues in answered.values() for queue in queues}
    missing = [queue for queue in QUEUES if queue not in consumed]
    return f"No worker consumes the queue(s) {', '.join(missing)}." if missing else None


def queue_backlog() -> str | None:
    over = [
        f"{labels[0]}: {int(depth)}"
        for labels, depth in metrics.celery_queue_depths()
        if depth >= settings.NOTIFY_QUEUE_BACKLOG
    ]
    return f"Messages waiting ({', '.join(over)})." if over else None
