"""A run whose task message was lost (a broker restarted without persistence, as the embedded
Redis is) is sent again by the minutely housekeeping, and a real worker then runs it."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from backtests import selectors, services
from backtests.models import Backtest, RunStatus, Sweep, SweepRun
from tests.backtests.run_helpers import create_backtest, create_sweep
from tests.factories import UserFactory

pytestmark = pytest.mark.timeout(120)


def wait_for(check: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def lost_queue(settings: Any) -> Any:
    """Sends go to a queue no worker reads until the test points them at its worker: the
    messages sent meanwhile are as good as lost. Purged afterwards."""
    from tradingbot.celery import app

    settings.BACKTESTS_QUEUE = f"lost-{uuid.uuid4().hex[:8]}"
    yield settings.BACKTESTS_QUEUE
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.BACKTESTS_QUEUE)


def lose_messages(model: Any, **filters: Any) -> None:
    """Make the rows look sent long ago (their message never reached any worker)."""
    model.objects.filter(**filters).update(enqueued_at=timezone.now() - timedelta(hours=1))


def test_a_backtest_whose_message_was_lost_is_sent_again_and_runs(
    transactional_db, celery_worker_process, sample_candles, settings, lost_queue
):
    lost = create_backtest(UserFactory(), sample_candles, params={}, enqueue=True)
    waiting = create_backtest(UserFactory(), sample_candles, params={}, enqueue=True)
    lose_messages(Backtest, pk=lost.pk)
    settings.BACKTESTS_QUEUE = celery_worker_process.queue

    assert services.backtests_requeue_lost() == 1
    assert services.backtests_requeue_lost() == 0  # just sent: not again

    wait_for(lambda: Backtest.objects.get(pk=lost.pk).status == RunStatus.DONE)
    assert Backtest.objects.get(pk=lost.pk).attempts == 1
    assert Backtest.objects.get(pk=waiting.pk).status == RunStatus.QUEUED  # not yet overdue


def test_a_sweep_whose_messages_were_lost_is_sent_again_and_finished_by_its_last_combination(
    transactional_db, celery_worker_process, sample_candles, settings, lost_queue
):
    grid = {"fast": [5, 10], "slow": [30, 50]}
    sweep = create_sweep(UserFactory(), sample_candles, grid=grid, params={})
    lose_messages(SweepRun, sweep=sweep)
    settings.BACKTESTS_QUEUE = celery_worker_process.queue

    assert services.sweeps_requeue_lost() == 4

    # each combination alone in a message; the one recorded last closes the sweep
    wait_for(lambda: Sweep.objects.get(pk=sweep.pk).status == RunStatus.DONE)
    finished = Sweep.objects.get(pk=sweep.pk)
    assert finished.status == RunStatus.DONE
    assert finished.done_count == 4
    assert len(selectors.sweep_ranking(sweep=finished)) == 4


def test_a_cancelled_sweeps_combinations_are_not_sent_again(
    db, sample_candles, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        sweep = create_sweep(
            UserFactory(), sample_candles, grid={"fast": [5, 10]}, params={"slow": 40}
        )
    services.sweep_cancel(sweep=sweep)
    lose_messages(SweepRun, sweep=sweep)

    assert services.sweeps_requeue_lost() == 0
