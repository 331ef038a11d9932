"""The Celery app: JSON only, time limits, one routing key per queue, the hourly cleanup."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import api_token_issue
from accounts.tasks import cleanup_expired_auth_task
from tests.factories import UserFactory
from tradingbot.celery import app

CLEANUP_TASK = "accounts.tasks.cleanup_expired_auth_task"


def test_it_speaks_json_only():
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert list(app.conf.accept_content) == ["json"]


def test_it_limits_task_run_time_softly_before_killing():
    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit
    assert soft is not None
    assert hard is not None
    assert 0 < soft < hard


def test_it_routes_each_queue_through_its_own_exchange_and_routing_key():
    queues = {queue.name: queue for queue in app.conf.task_queues}
    assert set(queues) == {"default", "trading", "backtests"}
    for name, queue in queues.items():
        assert queue.routing_key == name
        assert queue.exchange.name == name
    assert app.conf.task_default_queue == "default"
    assert app.conf.task_default_routing_key == "default"


def test_it_sends_a_task_without_explicit_queue_to_the_default_queue():
    route = app.amqp.router.route({}, CLEANUP_TASK)
    assert route["queue"].name == "default"
    assert route["queue"].routing_key == "default"


def test_it_schedules_the_auth_cleanup_hourly_with_an_expiry_under_an_hour():
    # given
    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == CLEANUP_TASK]
    # then
    assert len(entries) == 1
    [entry] = entries
    assert entry["schedule"] == timedelta(hours=1)
    assert entry["options"]["queue"] == "default"
    assert 0 < entry["options"]["expires"] < 3600
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_it_dispatches_bot_ticks_every_second_on_the_trading_queue():
    [entry] = [e for e in app.conf.beat_schedule.values()
               if e["task"] == "bots.tasks.dispatch_ticks_task"]  # fmt: skip
    assert entry["schedule"] == timedelta(seconds=1)
    assert entry["options"]["queue"] == "trading"
    assert 0 < entry["options"]["expires"] <= 10  # a backlog of dispatches is dropped, not run


def test_every_scheduled_task_is_a_registered_task():
    app.loader.import_default_modules()
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] in app.tasks, name


def test_it_registers_the_cleanup_task_under_its_scheduled_name_without_storing_results():
    assert CLEANUP_TASK in app.tasks
    assert app.tasks[CLEANUP_TASK].name == cleanup_expired_auth_task.name
    assert app.tasks[CLEANUP_TASK].ignore_result is True


@pytest.mark.timeout(120)
def test_it_deletes_expired_sessions_and_tokens_in_a_real_worker(
    transactional_db, celery_worker_process
):
    # given
    now = timezone.now()
    user = UserFactory()
    expired_session = Session.objects.create(
        session_key="expired0session0key0000000000000",
        session_data="e30:",
        expire_date=now - timedelta(minutes=5),
    )
    live_session = Session.objects.create(
        session_key="live0session0key0000000000000000",
        session_data="e30:",
        expire_date=now + timedelta(days=1),
    )
    expired_token = api_token_issue(user=user).token
    ApiToken.objects.filter(pk=expired_token.pk).update(expires_at=now - timedelta(seconds=1))
    live_token = api_token_issue(user=user).token
    # when: the task ignores its result by default; this call asks for it to wait on it
    result = cleanup_expired_auth_task.apply_async(
        queue=celery_worker_process.queue, ignore_result=False
    )
    outcome = result.get(timeout=30)
    # then
    assert outcome == {"sessions": 1, "tokens": 1}, celery_worker_process.log_path.read_text()
    assert not Session.objects.filter(pk=expired_session.pk).exists()
    assert Session.objects.filter(pk=live_session.pk).exists()
    assert not ApiToken.objects.filter(pk=expired_token.pk).exists()
    assert ApiToken.objects.filter(pk=live_token.pk).exists()
    # The worker logs "succeeded" just after it stores the result: give the line a moment.
    expected = f"{CLEANUP_TASK}[{result.id}] succeeded"
    deadline = time.monotonic() + 10
    while expected not in celery_worker_process.log_path.read_text():
        assert time.monotonic() < deadline, celery_worker_process.log_path.read_text()
        time.sleep(0.05)


def test_an_unacknowledged_message_comes_back_only_after_the_task_must_have_ended():
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert app.conf.task_time_limit < visibility <= 15 * 60
