"""Sweep combinations in batches, in-process: how a sweep is cut into tasks, and a batch's
combinations each recorded on their own (a failure, a cancel, a second delivery, a lost worker,
the time limit). Real workers running batches are in test_worker_runs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from backtests import services, tasks
from backtests.models import RunStatus, Sweep, SweepRun
from backtests.services import sweep_results, sweep_runs
from backtests.services.sweep_runs import RUNS_TASK
from backtests.services.sweeps import STALE_ERROR, batch_size
from strategies.registry import active
from tests.backtests.run_helpers import create_sweep
from tradingbot import broker

GRID = {"fast": [5, 10, 20], "slow": [30, 50]}  # 6 combinations, fast 20 the last two


@pytest.fixture
def no_broker(django_capture_on_commit_callbacks: Any) -> Any:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        yield callbacks


@pytest.fixture
def queue(settings: Any) -> Any:
    """Sends go to a queue of this test's own, read back through the broker, purged afterwards."""
    from tradingbot.celery import app

    settings.BACKTESTS_QUEUE = f"batches-{uuid.uuid4().hex[:8]}"
    yield settings.BACKTESTS_QUEUE
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.BACKTESTS_QUEUE)


def sent_batches(queue: str) -> list[list[int]]:
    held = broker.pending_tasks([queue])
    assert held is not None
    return sorted(list(message.args[0]) for message in held if message.name == RUNS_TASK)


def create(user: Any, market: Any, **overrides: Any) -> Sweep:
    return create_sweep(user, market, **({"grid": GRID, "params": {}} | overrides))


def run_ids(sweep: Sweep) -> list[int]:
    return list(sweep.runs.order_by("seq").values_list("pk", flat=True))


def patch_strategy(monkeypatch: Any, before: Any) -> None:
    """Call ``before(strategy)`` first whenever MA Cross computes its positions."""
    cls = active().get("ma_cross")
    real = cls.target_position

    def patched(self: Any, candles: Any) -> Any:
        before(self)
        return real(self, candles)

    monkeypatch.setattr(cls, "target_position", patched)


def counts(sweep: Sweep) -> tuple[str, int, int]:
    sweep.refresh_from_db()
    return sweep.status, sweep.done_count, sweep.failed_count


@pytest.mark.parametrize(
    ("combinations", "size", "limit"),
    [(1, 1, 8), (16, 1, 8), (17, 2, 8), (100, 7, 8), (128, 8, 8), (1000, 8, 8), (1000, 3, 3)],
)
def test_a_batch_is_small_enough_to_spread_and_never_over_the_setting(
    settings, combinations, size, limit
):
    settings.SWEEP_BATCH_SIZE = limit

    assert batch_size(combinations) == size


def test_a_sweep_is_sent_as_batches_of_its_combinations_in_grid_order(
    user, sample_candles, queue, settings, django_capture_on_commit_callbacks
):
    settings.SWEEP_BATCH_SIZE = 4
    grid = {"fast": list(range(2, 27, 2)), "slow": [30, 40]}  # 26 combinations: batches of 2
    with django_capture_on_commit_callbacks(execute=True):
        sweep = create(user, sample_candles, grid=grid)

    ids = run_ids(sweep)
    assert len(ids) == 26
    assert sent_batches(queue) == [ids[first : first + 2] for first in range(0, 26, 2)]


def test_a_batch_runs_its_combinations_and_the_last_one_closes_the_sweep(
    user, sample_candles, no_broker
):
    sweep = create(user, sample_candles)

    statuses = services.sweep_runs_execute(run_ids=run_ids(sweep), worker="w1")

    assert statuses == ["done"] * 6
    assert counts(sweep) == (RunStatus.DONE, 6, 0)  # no callback task needed
    assert sweep.finished_at is not None
    assert {run.worker for run in sweep.runs.all()} == {"w1"}
    assert all(run.metrics for run in sweep.runs.all())


def test_a_failing_combination_does_not_fail_its_batch_mates(
    user, sample_candles, no_broker, monkeypatch
):
    sweep = create(user, sample_candles)

    def cursed(strategy: Any) -> None:
        if strategy.values["fast"] == 10:
            raise ValueError("fast 10 is cursed")

    patch_strategy(monkeypatch, cursed)

    statuses = services.sweep_runs_execute(run_ids=run_ids(sweep))

    assert statuses == ["done", "done", "failed", "failed", "done", "done"]
    assert counts(sweep) == (RunStatus.DONE, 4, 2)
    failed = sweep.runs.filter(status=RunStatus.FAILED)
    assert {(run.params["fast"], run.error, run.metrics) for run in failed} == {
        (10, "fast 10 is cursed", None)
    }


def test_an_unexpected_crash_fails_only_its_combination(
    user, sample_candles, no_broker, monkeypatch
):
    sweep = create(user, sample_candles)

    def crashes(strategy: Any) -> None:
        if strategy.values["slow"] == 50:
            raise ZeroDivisionError

    patch_strategy(monkeypatch, crashes)

    statuses = services.sweep_runs_execute(run_ids=run_ids(sweep))

    assert statuses == ["done", "failed"] * 3
    assert counts(sweep) == (RunStatus.DONE, 3, 3)
    assert "has been logged" in sweep.runs.filter(status=RunStatus.FAILED).first().error


def test_a_cancel_while_a_batch_runs_skips_the_rest_of_it(
    user, sample_candles, no_broker, monkeypatch
):
    sweep = create(user, sample_candles)

    def cancel_at_the_second(strategy: Any) -> None:
        if (strategy.values["fast"], strategy.values["slow"]) == (5, 50):
            services.sweep_cancel(sweep=Sweep.objects.get(pk=sweep.pk))

    patch_strategy(monkeypatch, cancel_at_the_second)

    statuses = services.sweep_runs_execute(run_ids=run_ids(sweep))

    # the combination running at the cancel is recorded; the others never start
    assert statuses == ["done", "done", "skipped", "skipped", "skipped", "skipped"]
    runs = list(sweep.runs.order_by("seq"))
    assert [run.status for run in runs] == [RunStatus.DONE] * 2 + [RunStatus.CANCELLED] * 4
    assert all(run.started_at is None for run in runs[2:])
    assert counts(sweep) == (RunStatus.CANCELLED, 2, 0)


def test_a_batch_delivered_again_after_its_worker_was_lost_counts_each_combination_once(
    user, sample_candles, no_broker
):
    # given a worker that recorded the first two combinations of its batch, had claimed the
    # third when it was killed, and never reached the others
    sweep = create(user, sample_candles)
    ids = run_ids(sweep)
    services.sweep_runs_execute(run_ids=ids[:2], worker="dead")
    SweepRun.objects.filter(pk=ids[2]).update(status=RunStatus.RUNNING, worker="dead")

    # when the batch's message is delivered again (late acknowledgement), then once more
    again = services.sweep_runs_execute(run_ids=ids, worker="w2")
    once_more = services.sweep_runs_execute(run_ids=ids, worker="w3")

    # then it runs what was not recorded, and every combination counts once
    assert again == ["skipped", "skipped", "done", "done", "done", "done"]
    assert once_more == ["skipped"] * 6
    assert counts(sweep) == (RunStatus.DONE, 6, 0)
    assert [run.worker for run in sweep.runs.order_by("seq")] == ["dead"] * 2 + ["w2"] * 4


def test_outcomes_written_twice_are_counted_once(user, sample_candles, no_broker):
    # two deliveries of one combination that both ran it: the second write finds it recorded
    sweep = create(user, sample_candles, grid={"fast": [5, 10]}, params={"slow": 30})
    first, second = run_ids(sweep)
    SweepRun.objects.filter(pk__in=(first, second)).update(status=RunStatus.RUNNING)
    Sweep.objects.filter(pk=sweep.pk).update(status=RunStatus.RUNNING)
    outcome = sweep_results.Outcome(first, metrics={"total_return": 0.1})

    assert sweep_results.record(sweep.pk, [outcome]) == [first]
    assert sweep_results.record(sweep.pk, [outcome]) == []
    assert counts(sweep) == (RunStatus.RUNNING, 1, 0)


def test_a_combination_sent_again_alone_runs_through_the_task(
    user, sample_candles, no_broker, queue, settings
):
    # given a sweep whose messages were lost: the housekeeping sends each again, alone
    settings.BACKTEST_REQUEUE_SECONDS = 60
    sweep = create(user, sample_candles, grid={"fast": [5, 10]}, params={"slow": 30})
    SweepRun.objects.filter(sweep=sweep).update(enqueued_at=timezone.now() - timedelta(hours=1))
    assert services.sweeps_requeue_lost() == 2
    first, second = sent_batches(queue)
    assert [first, second] == [[pk] for pk in run_ids(sweep)]

    # when a worker runs those messages (and one that an older release sent, by id)
    tasks.run_sweep_runs_task.apply(args=(first,))
    SweepRun.objects.filter(pk=second[0]).update(status=RunStatus.QUEUED)
    tasks.run_sweep_combination_task.apply(args=(second[0],))

    # then both are recorded and the sweep is closed
    assert counts(sweep) == (RunStatus.DONE, 2, 0)


def test_results_of_slow_combinations_are_written_as_they_come(
    user, sample_candles, no_broker, monkeypatch
):
    # given combinations that each take longer than the progress interval
    monkeypatch.setattr(sweep_runs, "PROGRESS_EVERY_SECONDS", 0)
    sweep = create(user, sample_candles)
    done_before: list[int] = []
    patch_strategy(
        monkeypatch,
        lambda _strategy: done_before.append(
            SweepRun.objects.filter(sweep=sweep, status=RunStatus.DONE).count()
        ),
    )

    services.sweep_runs_execute(run_ids=run_ids(sweep))

    # then each was recorded before the next started, not all at the end of the batch
    assert done_before == [0, 1, 2, 3, 4, 5]


def test_a_batch_out_of_time_hands_the_rest_on_to_a_new_task(
    user, sample_candles, no_broker, queue, settings
):
    # given a soft time limit that the first combination already uses up half of
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 0
    sweep = create(user, sample_candles)
    ids = run_ids(sweep)
    before = timezone.now()

    statuses = services.sweep_runs_execute(run_ids=ids)

    # then it runs one and sends the others to a new task, still queued, stamped as sent
    assert statuses == ["done"] + ["handed_on"] * 5
    assert sent_batches(queue) == [ids[1:]]
    rest = SweepRun.objects.filter(pk__in=ids[1:])
    assert {run.status for run in rest} == {RunStatus.QUEUED}
    assert all(run.enqueued_at >= before for run in rest)
    assert counts(sweep) == (RunStatus.RUNNING, 1, 0)


def test_the_soft_limit_fails_a_tasks_first_combination_and_hands_on_a_later_one(
    user, sample_candles, no_broker, queue, monkeypatch
):
    sweep = create(user, sample_candles, grid={"fast": [5, 10, 20]}, params={"slow": 30})
    ids = run_ids(sweep)

    def out_of_time(strategy: Any) -> None:
        if strategy.values["fast"] in (5, 20):
            raise SoftTimeLimitExceeded

    patch_strategy(monkeypatch, out_of_time)

    # the first combination of a task alone took too long: it fails
    assert services.sweep_runs_execute(run_ids=ids[:1]) == ["failed"]
    # a later one was cut short by the time its batch-mates took: it goes on to a new task
    assert services.sweep_runs_execute(run_ids=ids[1:]) == ["done", "handed_on"]

    assert sent_batches(queue) == [ids[2:]]
    assert SweepRun.objects.get(pk=ids[2]).status == RunStatus.QUEUED
    assert "time limit" in SweepRun.objects.get(pk=ids[0]).error
    assert counts(sweep) == (RunStatus.RUNNING, 1, 1)


def test_a_lost_workers_running_combinations_fail_and_the_rest_of_its_batch_still_runs(
    user, sample_candles, no_broker, settings
):
    # given a worker that claimed two combinations of its batch (one finished, not yet written)
    # and was lost, its four others queued
    settings.BACKTEST_STALE_SECONDS = 60
    sweep = create(user, sample_candles)
    ids = run_ids(sweep)
    long_ago = timezone.now() - timedelta(seconds=61)
    SweepRun.objects.filter(pk__in=ids[:2]).update(
        status=RunStatus.RUNNING, worker="dead", heartbeat_at=long_ago
    )
    Sweep.objects.filter(pk=sweep.pk).update(status=RunStatus.RUNNING)

    # when the stale check runs: both fail, in one write; the sweep waits for the others
    assert services.sweeps_fail_stale() == 2
    assert counts(sweep) == (RunStatus.RUNNING, 0, 2)
    assert {run.error for run in sweep.runs.filter(pk__in=ids[:2])} == {STALE_ERROR}

    # and when the batch's message comes back, the others run and the sweep is closed
    services.sweep_runs_execute(run_ids=ids)
    assert counts(sweep) == (RunStatus.DONE, 4, 2)
