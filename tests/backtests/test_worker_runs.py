"""Backtests and sweeps on REAL Celery worker processes (``celery worker`` subprocesses).

Each test starts its own workers on a queue of its own (``worker_helpers``), points
``settings.BACKTESTS_QUEUE`` at it so the services enqueue there, and talks to the workers only
through the database, the broker and the channel layer, as the web process does. Workers that
must run the slow test strategy load it through the real ``STRATEGY_MODULES`` setting.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from django.conf import settings as django_settings
from django.db import models, transaction
from django.utils import timezone

from backtests import services
from backtests.models import Backtest, BacktestTrade, RunStatus, Sweep, SweepRun
from backtests.runner import run_backtest
from backtests.services import sweeps as sweep_services
from backtests.tasks import fail_stale_runs_task, run_backtest_task
from strategies.registry import active, load_registry
from strategies.services import strategy_catalogue_sync
from tests.backtests import slow_strategy
from tests.backtests.conftest import SampleMarket
from tests.backtests.worker_helpers import (
    GroupListener,
    StartWorkers,
    Worker,
    group_listener,
    wait_until,
    worker_processes,
)

__all__ = ["group_listener", "worker_processes"]  # fixtures, imported for pytest to find

pytestmark = pytest.mark.timeout(180)

FINISHED = {RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED}
MA_PARAMS = {"fast": 10, "slow": 30, "ma": "sma"}
STALE_ERROR = "Its worker stopped responding"
RUN_TIMEOUT = 60.0
M = TypeVar("M", bound=models.Model)


@pytest.fixture
def backtest_workers(worker_processes: StartWorkers, settings: Any) -> StartWorkers:
    """``start(count, **options)``: workers (as ``worker_processes`` starts them) on a queue of
    their own, which the services then send the runs to."""

    def start(count: int, **options: Any) -> list[Worker]:
        workers = worker_processes(count, **options)
        settings.BACKTESTS_QUEUE = workers[0].queue
        return workers

    return start


@pytest.fixture
def slow_workers(
    backtest_workers: StartWorkers, strategy_catalogue: None
) -> Iterator[StartWorkers]:
    """``start(count, **options)``: ``backtest_workers`` that load the slow strategy, which
    this process's registry and catalogue hold too (the API checks both); the built-in
    registry is restored afterwards."""
    load_registry([slow_strategy.MODULE])
    strategy_catalogue_sync()
    yield functools.partial(backtest_workers, strategy_modules=[slow_strategy.MODULE])
    load_registry(django_settings.STRATEGY_MODULES)


def backtest_request(market: SampleMarket, strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "params": params,
        **market.period(),
        "initial_cash": "10000",
        "fee_rate": "0.001",
        "slippage_bps": 0,
        "position_size": 1,
    }


def post_backtest(client: Any, request: dict[str, Any]) -> int:
    response = client.post("/api/backtests", request, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == RunStatus.QUEUED
    return int(response.json()["id"])


def wait_for(model: type[M], pk: int, *, what: str, **fields: Any) -> M:
    """The row once every field in ``fields`` matches (a value, or a predicate on the value),
    read from the database as the workers write it."""

    def reached() -> M | None:
        row = model._default_manager.get(pk=pk)
        matches = all(_matches(getattr(row, name), want) for name, want in fields.items())
        return row if matches else None

    return wait_until(reached, timeout=RUN_TIMEOUT, what=f"{model.__name__} {pk} {what}")


def _matches(value: Any, want: Any) -> bool:
    return want(value) if callable(want) else value == want


def finished(status: str) -> bool:
    return status in FINISHED


def wait_for_finished_backtest_via_api(client: Any, backtest_id: int) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/backtests/{backtest_id}").json()
        return body if body["status"] in FINISHED else None

    return wait_until(finished, timeout=RUN_TIMEOUT, what=f"backtest {backtest_id} to finish")


def reference_result(market: SampleMarket, strategy: str, params: dict[str, Any], run: Any) -> Any:
    """The same run computed here, in the test process, from the same stored candles."""
    return run_backtest(market.frame(run), active().create(strategy, params), run.engine_settings())


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


# --- 1. A backtest through the API on a real worker -------------------------------------------


def test_a_backtest_created_through_the_api_runs_to_done_on_a_real_worker(
    backtest_workers: StartWorkers, auth_client: Any, sample_candles: SampleMarket
) -> None:
    # given
    [worker] = backtest_workers(1)
    # when
    backtest_id = post_backtest(
        auth_client, backtest_request(sample_candles, "ma_cross", MA_PARAMS)
    )
    body = wait_for_finished_backtest_via_api(auth_client, backtest_id)
    # then: done by that worker, with the results this process computes from the same candles
    assert body["status"] == RunStatus.DONE, (body, worker.log())
    assert body["progress"] == 1.0
    assert body["error"] == ""
    assert body["attempts"] == 1
    backtest = Backtest.objects.get(pk=backtest_id)
    assert backtest.worker == worker.hostname
    expected = reference_result(sample_candles, "ma_cross", MA_PARAMS, backtest)
    assert body["metrics"] == as_json(expected.metrics)
    assert body["candle_count"] == sample_candles.count
    trade_count = len(expected.trades)
    assert trade_count > 0
    assert body["trade_count"] == trade_count
    # the trades were stored, in order, and read back through the API
    trades = auth_client.get(f"/api/backtests/{backtest_id}/trades?page_size=1000").json()
    assert trades["count"] == trade_count == BacktestTrade.objects.filter(backtest=backtest).count()
    assert [trade["seq"] for trade in trades["results"]] == list(range(trade_count))
    assert [trade["entry_time"] for trade in trades["results"]] == list(
        expected.trades["entry_time"]
    )
    # and the equity curve: first and last candle kept, ending on the final equity
    equity = auth_client.get(f"/api/backtests/{backtest_id}/equity").json()
    assert equity[0][0] == int(expected.times[0])
    assert equity[-1] == [int(expected.times[-1]), pytest.approx(body["metrics"]["final_equity"])]
    assert [point[0] for point in equity] == sorted(point[0] for point in equity)


# --- 2. Progress events on the channel layer --------------------------------------------------


def test_progress_events_reach_the_backtest_group_only_after_commit_and_end_on_done(
    backtest_workers: StartWorkers,
    group_listener: GroupListener,
    auth_client: Any,
    sample_candles: SampleMarket,
) -> None:
    # given: a worker, and a channel of this process's own on the channel layer
    [worker] = backtest_workers(1)
    request = backtest_request(sample_candles, "ma_cross", MA_PARAMS)
    # when: created in a transaction still open while the group is joined
    with transaction.atomic():
        backtest_id = post_backtest(auth_client, request)
        group_listener.join(f"backtest-{backtest_id}")
        before_commit = group_listener.receive(seconds=1.0)
        assert Backtest.objects.get(pk=backtest_id).status == RunStatus.QUEUED
    # the commit sends the task and publishes "queued"; the worker does the rest
    messages = group_listener.receive(
        seconds=RUN_TIMEOUT, until=lambda message: message["event"]["data"]["status"] in FINISHED
    )
    # then: nothing while the transaction was open (not even the task: the worker never saw it)
    assert before_commit == []
    assert messages, worker.log()
    assert {message["type"] for message in messages} == {"stream.event"}
    events = [message["event"] for message in messages]
    assert {(event["type"], event["id"]) for event in events} == {("backtest.status", backtest_id)}
    statuses = [event["data"]["status"] for event in events]
    assert _without_repeats(statuses) == [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.DONE]
    progress = [event["data"]["progress"] for event in events]
    assert progress == sorted(progress), progress
    assert events[-1]["data"] == {"status": RunStatus.DONE, "progress": 1.0, "error": ""}
    assert Backtest.objects.get(pk=backtest_id).status == RunStatus.DONE


def _without_repeats(values: list[str]) -> list[str]:
    return [value for index, value in enumerate(values) if index == 0 or values[index - 1] != value]


# --- 3. A worker killed mid-run ----------------------------------------------------------------


def start_slow_backtest(client: Any, market: SampleMarket, sleep: float) -> int:
    """A backtest of the slow strategy, returned once its worker is inside the strategy (it
    reported 0.4 and sleeps before the next report)."""
    request = backtest_request(market, slow_strategy.KEY, {"sleep": sleep})
    backtest_id = post_backtest(client, request)
    wait_for(
        Backtest, backtest_id, what="inside the strategy", status=RunStatus.RUNNING, progress=0.4
    )
    return backtest_id


def test_a_backtest_whose_worker_is_killed_is_failed_by_the_stale_check_not_left_running(
    slow_workers: StartWorkers, auth_client: Any, sample_candles: SampleMarket, settings: Any
) -> None:
    # given: a backtest running on a worker that is then killed (SIGKILL: no clean-up at all)
    [worker] = slow_workers(1)
    backtest_id = start_slow_backtest(auth_client, sample_candles, sleep=120)
    worker.kill()
    lost = Backtest.objects.get(pk=backtest_id)
    assert (lost.status, lost.worker) == (RunStatus.RUNNING, worker.hostname)
    assert lost.heartbeat_at is not None
    # when: the stale check runs while its silence is still shorter than the limit
    assert services.backtests_fail_stale() == 0
    # then it is left alone (a live worker may still report)
    assert Backtest.objects.get(pk=backtest_id).status == RunStatus.RUNNING
    # when: the stale check runs once the worker has been silent for longer
    later = lost.heartbeat_at + timedelta(seconds=settings.BACKTEST_STALE_SECONDS + 1)
    assert services.backtests_fail_stale(now=later) == 1
    # then: failed with an error that says why, and nothing half-stored
    failed = Backtest.objects.get(pk=backtest_id)
    assert failed.status == RunStatus.FAILED
    assert STALE_ERROR in failed.error
    assert failed.finished_at is not None
    assert failed.progress == 0.4
    assert failed.metrics is None
    assert not BacktestTrade.objects.filter(backtest_id=backtest_id).exists()
    # and a second delivery of its message (the broker's redelivery) is skipped
    assert services.backtest_execute(backtest_id=backtest_id, worker="again@pytest") == "failed"
    assert _state(Backtest.objects.get(pk=backtest_id)) == _state(failed)
    assert services.backtests_fail_stale(now=later) == 0


def _state(backtest: Backtest) -> dict[str, Any]:
    fields = ("status", "error", "progress", "attempts", "worker", "heartbeat_at", "finished_at")
    return {name: getattr(backtest, name) for name in fields}


def test_beats_stale_task_run_by_a_live_worker_fails_a_killed_workers_backtest(
    slow_workers: StartWorkers,
    worker_processes: StartWorkers,
    auth_client: Any,
    sample_candles: SampleMarket,
) -> None:
    # given: one worker for the backtest, killed mid-run; a second one for housekeeping, on a
    # queue of its own, whose stale limit is the shortest the settings allow
    [runner] = slow_workers(1)
    [housekeeper] = worker_processes(1, env={"BACKTEST_STALE_SECONDS": "10"})
    backtest_id = start_slow_backtest(auth_client, sample_candles, sleep=120)
    runner.kill()
    heartbeat_at = Backtest.objects.get(pk=backtest_id).heartbeat_at
    assert heartbeat_at is not None
    # when: beat's task runs on the live worker once the dead one has been silent for 10 s
    wait_until(
        lambda: timezone.now() - heartbeat_at > timedelta(seconds=10.5),
        timeout=30,
        what="the backtest's silence to pass 10 s",
        interval=0.2,
    )
    outcome = fail_stale_runs_task.apply_async(queue=housekeeper.queue, ignore_result=False)
    # then
    assert outcome.get(timeout=30) == {
        "backtests": 1, "sweep_runs": 0, "optimization_trials": 0, "walk_forward_tasks": 0,
    }, housekeeper.log()  # fmt: skip
    failed = Backtest.objects.get(pk=backtest_id)
    assert failed.status == RunStatus.FAILED
    assert STALE_ERROR in failed.error
    # when: the lost message is delivered again, to the live worker
    run_backtest_task.apply_async(
        args=[backtest_id], task_id=failed.task_id, queue=housekeeper.queue
    )
    # then: it is skipped (the task returns the status it found) and nothing changes
    assert _returned(housekeeper, "run_backtest_task", failed.task_id) == "'failed'"
    assert _state(Backtest.objects.get(pk=backtest_id)) == _state(failed)


def _returned(worker: Worker, task: str, task_id: str) -> str:
    """What a task returned (its repr), from the line Celery logs once it has returned:
    ``Task <name>[<id>] succeeded in <seconds>s: <value> data=...``."""
    log = worker.wait_for_log(f"{task}[{task_id}] succeeded in ")
    found = re.search(rf"{re.escape(task)}\[{task_id}\] succeeded in [0-9.e-]+s: (\S+)", log)
    assert found, log
    return found.group(1)


def test_a_backtest_whose_pool_process_is_killed_is_delivered_again_and_finishes(
    slow_workers: StartWorkers, auth_client: Any, sample_candles: SampleMarket
) -> None:
    # given: a prefork worker (a parent and one pool process) running a backtest
    [worker] = slow_workers(1, pool="prefork")
    backtest_id = start_slow_backtest(auth_client, sample_candles, sleep=3)
    [pool_process] = worker.pool_children()
    # when: the pool process dies (OOM killer, a segfault ...)
    os.kill(pool_process, signal.SIGKILL)
    # then: the parent puts the message back (late ack, reject on worker lost), a new pool
    # process runs the backtest again from the start, and it finishes
    done = wait_for(Backtest, backtest_id, what="to finish", status=finished)
    assert done.status == RunStatus.DONE, (done.error, worker.log())
    assert done.attempts == 2
    assert done.worker == worker.hostname
    assert BacktestTrade.objects.filter(backtest=done).count() == done.trade_count > 0
    assert pool_process not in worker.pool_children()


# --- 4. Cancel while running -------------------------------------------------------------------


def test_a_backtest_cancelled_while_running_stops_at_its_next_report_and_stores_nothing(
    slow_workers: StartWorkers, auth_client: Any, sample_candles: SampleMarket
) -> None:
    # given: a backtest inside its strategy on a worker
    [worker] = slow_workers(1)
    backtest_id = start_slow_backtest(auth_client, sample_candles, sleep=3)
    # when
    response = auth_client.post(f"/api/backtests/{backtest_id}/cancel")
    # then: cancelled at once; the worker finds out at its next report and returns
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == RunStatus.CANCELLED
    task_id = Backtest.objects.get(pk=backtest_id).task_id
    assert _returned(worker, "run_backtest_task", task_id) == "'cancelled'"
    cancelled = Backtest.objects.get(pk=backtest_id)
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.progress == 0.4  # it never reported 0.7
    assert (cancelled.metrics, cancelled.trade_count, cancelled.equity) == (None, 0, [])
    assert not BacktestTrade.objects.filter(backtest=cancelled).exists()


# --- 5. A sweep over two workers ---------------------------------------------------------------


GRID = {"fast": [5, 10, 15, 20], "slow": [30, 50, 80]}


def post_slow_sweep(client: Any, market: SampleMarket, sleep: float, grid: Any) -> int:
    """A sweep of the slow strategy, each combination sleeping ``sleep`` seconds first."""
    request = backtest_request(market, slow_strategy.KEY, {"sleep": sleep})
    request |= {"grid": grid, "rank_by": "total_return"}
    response = client.post("/api/sweeps", request, format="json")
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


@pytest.mark.parametrize("per_task", [1, 3])
def test_a_sweep_fans_out_over_two_workers_and_ranks_every_combination(
    slow_workers: StartWorkers,
    auth_client: Any,
    sample_candles: SampleMarket,
    monkeypatch: Any,
    per_task: int,
) -> None:
    # given: two workers sharing one queue; each combination sleeps 0.2 s first, so that while one
    # worker holds a task the next one in the queue is the other worker's to take; the sweep's
    # 12 combinations are sent one per task, or in 4 batches of 3
    workers = slow_workers(2)
    monkeypatch.setattr(sweep_services, "SPREAD_TASKS", 12 // per_task)
    # when
    sweep_id = post_slow_sweep(auth_client, sample_candles, 0.2, GRID)
    sweep = wait_for(Sweep, sweep_id, what="to finish", status=finished)
    # then: every combination done, by both workers
    assert sweep.status == RunStatus.DONE, [worker.log() for worker in workers]
    runs = list(SweepRun.objects.filter(sweep=sweep).order_by("seq"))
    assert len(runs) == sweep.combination_count == sweep.done_count == 12
    assert {run.status for run in runs} == {RunStatus.DONE}
    assert sweep.failed_count == 0
    assert {run.worker for run in runs} == {worker.hostname for worker in workers}
    # each with the metrics this process computes for the same parameters
    for run in runs:
        params = {**run.params, "sleep": 0}
        expected = reference_result(sample_candles, slow_strategy.KEY, params, sweep)
        assert run.metrics == as_json(expected.metrics), run.params
    # and the ranking, read back through the API, best total return first
    detail = auth_client.get(f"/api/sweeps/{sweep_id}").json()
    assert detail["status"] == RunStatus.DONE
    returns = [result["metrics"]["total_return"] for result in detail["results"]]
    assert len(returns) == 12
    assert returns == sorted(returns, reverse=True)
    assert [result["rank"] for result in detail["results"]] == list(range(1, 13))
    best = max(runs, key=lambda run: (run.metrics or {})["total_return"])
    assert detail["results"][0]["params"] == best.params


# --- 6. A sweep that loses a worker mid-way ----------------------------------------------------


def test_a_sweep_that_loses_a_worker_is_finished_from_the_others_by_the_stale_check(
    slow_workers: StartWorkers, auth_client: Any, sample_candles: SampleMarket, settings: Any
) -> None:
    # given: two workers on one queue, each combination taking a second
    doomed, survivor = slow_workers(2)
    grid = {"fast": [5, 10, 15], "slow": [30, 50]}
    sweep_id = post_slow_sweep(auth_client, sample_candles, 1.0, grid)
    # when: one worker is killed while it runs a combination (it just started: it sleeps 1 s)
    lost = wait_until(
        lambda: SweepRun.objects.filter(
            sweep_id=sweep_id, status=RunStatus.RUNNING, worker=doomed.hostname
        ).first(),
        timeout=RUN_TIMEOUT,
        what="a combination running on the worker to kill",
        interval=0.02,
    )
    doomed.kill()
    # then: the other worker runs every other combination, but the lost one is never recorded
    wait_for(Sweep, sweep_id, what="to run all but the lost combination", done_count=5)
    assert SweepRun.objects.get(pk=lost.pk).status == RunStatus.RUNNING
    assert services.sweeps_fail_stale() == 0
    assert Sweep.objects.get(pk=sweep_id).status == RunStatus.RUNNING
    # when: the stale check runs once the lost combination has been silent long enough
    later = timezone.now() + timedelta(seconds=settings.BACKTEST_STALE_SECONDS + 1)
    assert services.sweeps_fail_stale(now=later) == 1
    # then: that combination failed, and the sweep is finished and ranked from the others
    sweep = Sweep.objects.get(pk=sweep_id)
    assert (sweep.status, sweep.done_count, sweep.failed_count) == (RunStatus.DONE, 5, 1)
    assert sweep.finished_at is not None
    failed = SweepRun.objects.get(pk=lost.pk)
    assert failed.status == RunStatus.FAILED
    assert STALE_ERROR in failed.error
    others = SweepRun.objects.filter(sweep_id=sweep_id).exclude(pk=lost.pk)
    assert {run.status for run in others} == {RunStatus.DONE}
    assert {run.worker for run in others} >= {survivor.hostname}
    detail = auth_client.get(f"/api/sweeps/{sweep_id}").json()
    assert len(detail["results"]) == 5
    assert detail["failures"] == [{"params": lost.params, "error": failed.error}]
