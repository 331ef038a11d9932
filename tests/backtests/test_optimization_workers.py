"""Optimisations on REAL Celery worker processes: an Optuna study shared by two workers through
the storage on the test database's server, created and read through the API; and a worker
killed mid-trial, whose trial Optuna's heartbeat fails while the other worker finishes the rest."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from django.conf import settings as django_settings

from backtests.models import Optimization, OptimizationTrial, RunStatus, TrialState
from backtests.services import candle_cache
from strategies.registry import load_registry
from strategies.services import strategy_catalogue_sync
from tests.backtests import slow_strategy
from tests.backtests.conftest import SampleMarket
from tests.backtests.test_worker_runs import backtest_request, finished, wait_for
from tests.backtests.worker_helpers import StartWorkers, wait_until, worker_processes

__all__ = ["worker_processes"]  # a fixture, imported for pytest to find

pytestmark = pytest.mark.timeout(240)

OPTIMIZATIONS = "/api/optimizations"
SPACE = {"fast": {"low": 3, "high": 20, "step": 1}, "slow": {"low": 25, "high": 120, "step": 5}}


@pytest.fixture
def optimization_workers(worker_processes: StartWorkers, settings: Any) -> StartWorkers:
    def start(count: int, **options: Any) -> list[Any]:
        workers = worker_processes(count, **options)
        settings.BACKTESTS_QUEUE = workers[0].queue
        return workers

    candle_cache.forget()
    return start


def post_optimization(client: Any, request: dict[str, Any]) -> int:
    response = client.post(OPTIMIZATIONS, request, format="json")
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


def test_thirty_trials_of_ma_cross_on_two_workers_find_the_best_through_the_api(
    optimization_workers: StartWorkers, auth_client: Any, sample_candles: SampleMarket
) -> None:
    # given: two workers on one queue, and an optimisation of MA Cross on the shipped candles
    workers = optimization_workers(2)
    request = backtest_request(sample_candles, "ma_cross", {"ma": "sma"})
    request |= {"space": SPACE, "objective": "sharpe", "trials": 30}
    # when
    optimization_id = post_optimization(auth_client, request)

    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = auth_client.get(f"{OPTIMIZATIONS}/{optimization_id}").json()
        return body if body["status"] in {"done", "failed", "cancelled"} else None

    detail = wait_until(done, timeout=180, what="the optimisation to finish")
    # then: done, with every trial recorded, run by both workers
    assert detail["status"] == "done", [worker.log() for worker in workers]
    trials = auth_client.get(f"{OPTIMIZATIONS}/{optimization_id}/trials", {"page_size": 100}).json()
    rows = trials["results"]
    assert sorted(row["number"] for row in rows) == list(range(30))
    assert detail["done_count"] + detail["pruned_count"] + detail["failed_count"] == 30
    assert detail["failed_count"] == 0
    workers_used = set(
        OptimizationTrial.objects.filter(optimization_id=optimization_id).values_list(
            "worker", flat=True
        )
    )
    assert workers_used == {worker.hostname for worker in workers}
    # and the best value is at least as good as every finished trial's
    values = [row["value"] for row in rows if row["state"] == "complete" and row["feasible"]]
    assert len(values) >= 20
    assert detail["best_value"] is not None
    assert all(detail["best_value"] >= value for value in values)
    best = next(row for row in rows if row["number"] == detail["best_trial"])
    assert (best["params"], best["value"]) == (detail["best_params"], detail["best_value"])
    assert set(detail["importances"]) == {"fast", "slow"}


@pytest.fixture
def slow_optimization_workers(optimization_workers: StartWorkers, strategy_catalogue: None) -> Any:
    load_registry([slow_strategy.MODULE])
    strategy_catalogue_sync()
    yield functools.partial(optimization_workers, strategy_modules=[slow_strategy.MODULE])
    load_registry(django_settings.STRATEGY_MODULES)


def test_a_trial_whose_worker_is_killed_is_failed_by_the_heartbeat_and_the_rest_finish(
    slow_optimization_workers: Any, auth_client: Any, sample_candles: SampleMarket
) -> None:
    # given: two workers whose trials beat every second and are stale after 2 s; each trial
    # sleeps 1 s, long enough to kill a worker inside one
    heartbeat = {"OPTUNA_HEARTBEAT_SECONDS": "1", "OPTUNA_GRACE_SECONDS": "2"}
    doomed, survivor = slow_optimization_workers(2, env=heartbeat)
    request = backtest_request(sample_candles, slow_strategy.KEY, {"ma": "sma", "sleep": 1.0})
    request |= {"space": SPACE, "trials": 7, "seed": 1}
    optimization_id = post_optimization(auth_client, request)
    # when: the first worker is killed while it runs a trial
    running = wait_until(
        lambda: OptimizationTrial.objects.filter(
            optimization_id=optimization_id, worker=doomed.hostname, state=TrialState.RUNNING
        ).first(),
        timeout=60,
        what="a trial running on the doomed worker",
    )
    doomed.kill()
    # then: the survivor's next trial fails the dead one (Optuna's heartbeat) and runs the rest
    optimization = wait_for(Optimization, optimization_id, what="to finish", status=finished)
    assert optimization.status == RunStatus.DONE, survivor.log()
    killed = OptimizationTrial.objects.get(pk=running.pk)
    assert killed.state == TrialState.FAILED
    assert "stopped responding" in killed.error
    assert optimization.failed_count == 1
    assert optimization.done_count + optimization.pruned_count == 6
    assert OptimizationTrial.objects.filter(optimization_id=optimization_id).count() == 7
