"""Sending Celery tasks by name: the one way a service enqueues work.

An app's ``tasks.py`` imports its services (a task is a thin wrapper around one); a service that
imported the tasks back would close a circle. So services name the task instead: the name is
the task's ``name=`` in its ``@shared_task``, which tests and the beat schedule use too.
"""

from __future__ import annotations

from typing import Any

from celery import Signature
from celery.result import AsyncResult

from tradingbot.celery import app


def enqueue(name: str, *args: Any, queue: str, **options: Any) -> AsyncResult:
    """Send task ``name`` with ``args`` to ``queue`` (``task_id``, ``expires``... as Celery's
    ``apply_async`` takes them)."""
    return app.send_task(name, args=args, queue=queue, **options)


def task_signature(name: str, *args: Any, queue: str, **options: Any) -> Signature:
    """Task ``name`` with ``args``, not sent: a member of a group or chord."""
    return app.signature(name, args=args, queue=queue, **options)
