"""The staff alerts' own checks against the real broker: a queue no Celery worker consumes, and
a queue whose backlog passes ``NOTIFY_QUEUE_BACKLOG`` (``accounts.system_checks``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from accounts import system_checks
from tradingbot import metrics
from tradingbot.celery import app
from tradingbot.redis import get_redis


def fresh_queue() -> str:
    return f"alerts-test-{uuid.uuid4().hex[:8]}"


def test_a_queue_that_no_worker_consumes_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = fresh_queue()
    monkeypatch.setattr(system_checks, "QUEUES", (queue,))
    assert system_checks.workers_down() == f"No worker consumes the queue(s) {queue}."


@pytest.mark.process
def test_a_queue_a_live_worker_consumes_is_fine(
    monkeypatch: pytest.MonkeyPatch, celery_worker_process: Any, transactional_db: Any
) -> None:
    monkeypatch.setattr(system_checks, "QUEUES", (celery_worker_process.queue,))
    assert system_checks.workers_down() is None


@pytest.mark.parametrize(("waiting", "alert"), [(2, False), (3, True)])
def test_a_backlog_from_the_threshold_on_is_an_alert(
    monkeypatch: pytest.MonkeyPatch, settings: Any, waiting: int, alert: bool
) -> None:
    # given: a queue nobody consumes with messages waiting, the threshold at 3
    queue = fresh_queue()
    monkeypatch.setattr(metrics, "EXTRA_QUEUES", [queue])
    settings.NOTIFY_QUEUE_BACKLOG = 3
    try:
        for n in range(waiting):
            app.send_task("tests.alerts.nothing", args=(n,), queue=queue)
        # when
        problem = system_checks.queue_backlog()
    finally:
        client = get_redis()
        client.delete(*client.keys(f"{queue}*"), f"_kombu.binding.{queue}")
    # then: named with its depth from 3 on (the platform's own queues are empty here)
    assert (problem is not None and f"{queue}: {waiting}" in problem) is alert
