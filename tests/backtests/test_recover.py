"""A worker that starts sends again, at once, the runs whose message is gone: those its node's
previous process was running when it was killed, and queued ones the broker no longer holds (a
Redis that lost its data). A run whose message the broker still holds is never sent twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from backtests import services
from backtests.models import Backtest, RunStatus, SweepRun
from backtests.services.backtests import RUN_TASK
from backtests.services.sweep_runs import RUNS_TASK
from backtests.services.sweeps import COMBINATION_TASK
from backtests.tasks import note_worker_boot
from tests.backtests.run_helpers import create_backtest, create_sweep
from tests.factories import UserFactory
from tradingbot import broker
from tradingbot.broker import PendingTask

NODE = "celery@box"


@dataclass(frozen=True)
class ReadyConsumer:
    """What sends ``worker_ready``: Celery's consumer, of which the hook reads the node name."""

    hostname: str


@pytest.fixture
def queue(settings: Any) -> Any:
    """Sends go to a queue of this test's own, read back through the broker, purged afterwards."""
    from tradingbot.celery import app

    settings.BACKTESTS_QUEUE = f"recover-{uuid.uuid4().hex[:8]}"
    yield settings.BACKTESTS_QUEUE
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.BACKTESTS_QUEUE)


def sent_ids(queue: str, task: str) -> list[int]:
    held = broker.pending_tasks([queue])
    assert held is not None
    return sorted(message.args[0] for message in held if message.name == task)


def sent_batches(queue: str) -> list[list[int]]:
    """The sweep tasks in the queue: the ids each carries."""
    held = broker.pending_tasks([queue])
    assert held is not None
    return sorted(list(message.args[0]) for message in held if message.name == RUNS_TASK)


def test_it_sends_again_the_backtests_its_node_was_running_when_killed(db, sample_candles, queue):
    # given backtests running on this node since before it booted, one on another node and one
    # this process started itself
    booted = timezone.now()
    before = booted - timedelta(minutes=1)
    user = UserFactory()
    orphan, elsewhere, mine = (create_backtest(user, sample_candles) for _ in range(3))
    Backtest.objects.filter(pk=orphan.pk).update(
        status=RunStatus.RUNNING, worker=NODE, started_at=before, attempts=1
    )
    Backtest.objects.filter(pk=elsewhere.pk).update(
        status=RunStatus.RUNNING, worker="celery@other", started_at=before
    )
    Backtest.objects.filter(pk=mine.pk).update(
        status=RunStatus.RUNNING, worker=NODE, started_at=booted
    )
    Backtest.objects.exclude(pk__in=(orphan.pk, elsewhere.pk, mine.pk)).delete()

    # when this node's worker is ready
    resent = services.backtests_recover(worker=NODE, booted_at=booted, held=[])

    # then only the orphan is queued again, with its message in the broker, once
    assert resent == 1
    orphan.refresh_from_db()
    assert orphan.status == RunStatus.QUEUED
    assert orphan.attempts == 1
    assert sent_ids(queue, RUN_TASK) == [orphan.pk]
    assert Backtest.objects.get(pk=elsewhere.pk).status == RunStatus.RUNNING
    assert Backtest.objects.get(pk=mine.pk).status == RunStatus.RUNNING
    assert services.backtests_recover(worker=NODE, booted_at=booted, held=[]) == 0


def test_it_sends_again_a_queued_backtest_only_when_the_broker_lost_its_message(
    db, sample_candles, queue
):
    # given three queued backtests: one whose message is gone, one whose message the broker
    # holds, one just sent (its message may still be on its way)
    now = timezone.now()
    user = UserFactory()
    lost, held, fresh = (create_backtest(user, sample_candles) for _ in range(3))
    Backtest.objects.filter(pk__in=(lost.pk, held.pk)).update(
        enqueued_at=now - timedelta(seconds=30)
    )
    in_broker = [PendingTask(id=held.task_id, name=RUN_TASK, args=(held.pk,))]

    # when a worker is ready
    resent = services.backtests_recover(worker=NODE, booted_at=now, held=in_broker, now=now)

    # then only the lost one is sent, and not twice
    assert resent == 1
    assert sent_ids(queue, RUN_TASK) == [lost.pk]
    assert services.backtests_recover(worker=NODE, booted_at=now, held=in_broker) == 0
    assert {b.status for b in Backtest.objects.filter(pk__in=(lost.pk, held.pk, fresh.pk))} == {
        RunStatus.QUEUED
    }


def test_it_leaves_queued_backtests_alone_when_it_cannot_read_the_broker(db, sample_candles, queue):
    lost = create_backtest(UserFactory(), sample_candles)
    Backtest.objects.filter(pk=lost.pk).update(enqueued_at=timezone.now() - timedelta(hours=1))

    assert services.backtests_recover(worker=NODE, booted_at=timezone.now(), held=None) == 0
    assert sent_ids(queue, RUN_TASK) == []


def test_it_sends_again_lost_and_orphaned_sweep_combinations(
    db, sample_candles, queue, django_capture_on_commit_callbacks
):
    # given a sweep whose messages never reached the broker: one combination was running on this
    # node's previous process, one is held by the broker, the others are lost
    with django_capture_on_commit_callbacks(execute=False):
        sweep = create_sweep(
            UserFactory(), sample_candles, grid={"fast": [5, 10], "slow": [30, 50]}
        )
    booted = timezone.now()
    runs = list(sweep.runs.order_by("seq"))
    SweepRun.objects.filter(sweep=sweep).update(enqueued_at=booted - timedelta(minutes=5))
    SweepRun.objects.filter(pk=runs[0].pk).update(
        status=RunStatus.RUNNING, worker=NODE, started_at=booted - timedelta(minutes=1)
    )
    in_broker = [PendingTask(id="x", name=RUNS_TASK, args=([runs[1].pk],))]

    # when this node's worker is ready
    resent = services.sweeps_recover(worker=NODE, booted_at=booted, held=in_broker)

    # then the orphan and the two lost combinations are sent, one per message; the held one is not
    assert resent == 3
    assert sent_batches(queue) == [[runs[0].pk], [runs[2].pk], [runs[3].pk]]
    assert SweepRun.objects.get(pk=runs[0].pk).status == RunStatus.QUEUED


def test_a_batch_delivered_long_ago_holds_its_queued_runs_while_another_node_works_on_it(
    db, sample_candles, queue, django_capture_on_commit_callbacks
):
    # given two batches delivered a minute ago, each with a combination done and two queued: one
    # is being worked through on another node, the other's worker is gone (none of it running);
    # and a combination whose message an older release sent, still in the queue
    with django_capture_on_commit_callbacks(execute=False):
        sweep = create_sweep(
            UserFactory(), sample_candles, grid={"fast": [5, 10, 15], "slow": [30, 50, 80]}
        )
    now = timezone.now()
    ids = list(sweep.runs.order_by("seq").values_list("pk", flat=True))
    working, abandoned, legacy = ids[0:4], ids[4:8], ids[8]
    SweepRun.objects.filter(sweep=sweep).update(enqueued_at=now - timedelta(minutes=5))
    SweepRun.objects.filter(pk__in=(working[0], abandoned[0])).update(status=RunStatus.DONE)
    SweepRun.objects.filter(pk=working[1]).update(
        status=RunStatus.RUNNING, worker="celery@other", started_at=now, heartbeat_at=now
    )
    a_minute_ago = now.timestamp() - 60
    in_broker = [
        PendingTask(id="a", name=RUNS_TASK, args=(working,), delivered_at=a_minute_ago),
        PendingTask(id="b", name=RUNS_TASK, args=(abandoned,), delivered_at=a_minute_ago),
        PendingTask(id="c", name=COMBINATION_TASK, args=(legacy,)),
    ]

    # when a worker is ready
    resent = services.sweeps_recover(worker=NODE, booted_at=now, held=in_broker, now=now)

    # then only the abandoned batch's queued combinations are sent again, one per message
    assert resent == 3
    assert sent_batches(queue) == [[pk] for pk in abandoned[1:]]


def test_a_starting_worker_runs_the_recovery_through_celerys_signals(db, sample_candles, queue):
    from celery.signals import worker_init, worker_ready

    # given a backtest this node was running before its process booted, and one lost in the queue
    user = UserFactory()
    orphan, lost = create_backtest(user, sample_candles), create_backtest(user, sample_candles)
    Backtest.objects.filter(pk=orphan.pk).update(
        status=RunStatus.RUNNING, worker=NODE, started_at=timezone.now() - timedelta(minutes=1)
    )
    Backtest.objects.filter(pk=lost.pk).update(enqueued_at=timezone.now() - timedelta(minutes=1))

    # when the worker process has booted and its consumer is ready (``worker_init`` itself is
    # not sent here: Celery's Django fixup would close the test's database connection)
    assert "backtests.boot" in {key[0] for key, _ in worker_init.receivers}
    note_worker_boot()
    worker_ready.send(sender=ReadyConsumer(hostname=NODE))

    # then both are in the broker's queue
    assert sent_ids(queue, RUN_TASK) == sorted([orphan.pk, lost.pk])
    assert Backtest.objects.get(pk=orphan.pk).status == RunStatus.QUEUED


def test_it_sends_again_a_queued_backtest_delivered_to_a_worker_that_died_before_starting_it(
    db, sample_candles, queue
):
    # given two queued backtests whose message was delivered to a worker (unacknowledged): one
    # long ago (that worker died before claiming it), one a moment ago (a live worker's)
    now = timezone.now()
    user = UserFactory()
    stranded, taken = (create_backtest(user, sample_candles) for _ in range(2))
    Backtest.objects.filter(pk__in=(stranded.pk, taken.pk)).update(
        enqueued_at=now - timedelta(minutes=1)
    )
    in_broker = [
        PendingTask(stranded.task_id, RUN_TASK, (stranded.pk,), now.timestamp() - 30),
        PendingTask(taken.task_id, RUN_TASK, (taken.pk,), now.timestamp() - 0.5),
    ]

    # when a worker is ready, then only the stranded one is sent again
    assert services.backtests_recover(worker=NODE, booted_at=now, held=in_broker, now=now) == 1
    assert sent_ids(queue, RUN_TASK) == [stranded.pk]
