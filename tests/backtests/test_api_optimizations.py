"""The optimisation endpoints: create (and every refusal), an optimisation run in-process by the
same task body the workers run, its trials, best result, Pareto front and importances; list,
cancel, delete, and scoping to the owner. Real Optuna storage on the test database's server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from rest_framework.test import APIClient

from accounts.services import api_token_issue
from backtests.models import Optimization, OptimizationTrial, RunStatus, TrialState
from backtests.services import candle_cache, studies
from backtests.services.optimization_trials import optimization_work
from backtests.services.optimizations import optimizations_fail_stale
from tests.backtests.api_helpers import backtest_body, error_of, post_unsent
from tests.factories import UserFactory
from tradingbot import broker
from tradingbot.redis import get_redis

pytestmark = pytest.mark.django_db

OPTIMIZATIONS = "/api/optimizations"
SPACE = {"fast": {"low": 3, "high": 20, "step": 1}, "slow": {"low": 25, "high": 80, "step": 5}}


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Ids come back after a flush: a test must not find an earlier test's candles or study.
    candle_cache.forget()
    yield
    candle_cache.forget()


@pytest.fixture
def create(auth_client, django_capture_on_commit_callbacks, sample_candles, strategy_catalogue):
    """POST an optimisation of MA Cross on the sample market (``overrides`` replace fields)."""

    def post(**overrides: Any) -> Any:
        body = {
            **backtest_body(sample_candles, params={"ma": "sma"}),
            "space": SPACE,
            "trials": 12,
            "seed": 7,
            **overrides,
        }
        return post_unsent(auth_client, django_capture_on_commit_callbacks, OPTIMIZATIONS, body)

    return post


def run_trials(optimization_id: int, tasks: int = 2) -> None:
    """What the workers do: each task runs trials until none is left."""
    for slot in range(tasks):
        optimization_work(optimization_id=optimization_id, worker=f"w{slot}", slot=slot)


def test_an_optimization_finds_the_best_of_its_trials(create, auth_client) -> None:
    response = create()
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["trials"], body["sampler"]) == ("queued", 12, "tpe")
    run_trials(body["id"])

    detail = auth_client.get(f"{OPTIMIZATIONS}/{body['id']}").json()
    trials = auth_client.get(f"{OPTIMIZATIONS}/{body['id']}/trials", {"page_size": 100}).json()
    rows = trials["results"]
    assert detail["status"] == "done"
    assert sorted(row["number"] for row in rows) == list(range(12))
    complete = [row for row in rows if row["state"] == "complete" and row["feasible"]]
    assert complete, rows
    assert detail["best_value"] == max(row["value"] for row in complete)
    best = next(row for row in complete if row["number"] == detail["best_trial"])
    assert best["params"] == detail["best_params"]
    assert best["value"] == pytest.approx(best["metrics"]["sharpe"])
    assert detail["done_count"] + detail["pruned_count"] + detail["failed_count"] == 12
    for row in rows:  # every trial searched within the space, the rest fixed
        assert 3 <= row["params"]["fast"] <= 20
        assert 25 <= row["params"]["slow"] <= 80
        assert row["params"]["ma"] == "sma"


def test_the_study_is_shared_in_optunas_storage(create) -> None:
    optimization_id = create().json()["id"]
    run_trials(optimization_id)
    study = optuna.load_study(
        study_name=Optimization.objects.get(pk=optimization_id).study_name,
        storage=studies.storage(),
    )
    states = [trial.state for trial in study.trials]
    assert len(states) == 12
    assert all(state.is_finished() for state in states)


def test_parameters_the_strategy_rejects_are_pruned_not_failed(create, auth_client) -> None:
    # fast may exceed slow here: those trials are skipped with the strategy's reason
    space = {"fast": {"low": 5, "high": 60, "step": 5}, "slow": {"low": 20, "high": 40, "step": 5}}
    optimization_id = create(space=space, trials=15, sampler="random").json()["id"]
    run_trials(optimization_id)
    pruned = OptimizationTrial.objects.filter(
        optimization_id=optimization_id, state=TrialState.PRUNED
    )
    assert pruned.exists()
    for trial in pruned:
        assert trial.params["fast"] >= trial.params["slow"]
        assert "rejects" in trial.error
    assert Optimization.objects.get(pk=optimization_id).failed_count == 0
    # and ordered best first, the trials without a value come last on every database
    ranked = auth_client.get(
        f"{OPTIMIZATIONS}/{optimization_id}/trials", {"order": "value", "page_size": 100}
    ).json()["results"]
    values = [row["value"] for row in ranked]
    valued = [value for value in values if value is not None]
    assert values == valued + [None] * (len(values) - len(valued))
    assert valued == sorted(valued, reverse=True)


def test_a_weighted_mix_and_a_grid(create, auth_client) -> None:
    space = {"fast": {"choices": [5, 10]}, "slow": {"low": 30, "high": 50, "step": 10}}
    mix = {"sharpe": 0.5, "calmar": 0.5}
    body = create(space=space, objective=mix, sampler="grid", trials=50).json()
    assert body["trials"] == 6  # the grid's size
    run_trials(body["id"])
    detail = auth_client.get(f"{OPTIMIZATIONS}/{body['id']}").json()
    metrics = detail["best_metrics"]
    assert detail["best_value"] == pytest.approx(0.5 * metrics["sharpe"] + 0.5 * metrics["calmar"])
    rows = OptimizationTrial.objects.filter(optimization_id=body["id"])
    seen = {(row.params["fast"], row.params["slow"]) for row in rows}
    assert seen == {(f, s) for f in (5, 10) for s in (30, 40, 50)}


def test_several_objectives_give_a_pareto_front(create, auth_client) -> None:
    body = create(objective=["sharpe", "max_drawdown"], trials=10).json()
    assert body["sampler"] == "nsga2"
    run_trials(body["id"])
    detail = auth_client.get(f"{OPTIMIZATIONS}/{body['id']}").json()
    front = OptimizationTrial.objects.filter(
        optimization_id=body["id"], number__in=detail["pareto"]
    )
    others = OptimizationTrial.objects.filter(
        optimization_id=body["id"], state=TrialState.COMPLETE, feasible=True
    ).exclude(number__in=detail["pareto"])
    assert front.exists()
    for trial in others:  # every trial off the front is dominated by one on it
        assert any(
            all(a >= b for a, b in zip(f.values, trial.values, strict=True))
            and f.values != trial.values
            for f in front
        ) or any(f.values == trial.values for f in front)


def test_min_trades_keeps_thin_trials_from_the_best(create, auth_client) -> None:
    body = create(min_trades=10_000, trials=4).json()
    run_trials(body["id"])
    detail = auth_client.get(f"{OPTIMIZATIONS}/{body['id']}").json()
    assert detail["status"] == "failed"
    assert "fewer than 10000 trades" in detail["error"]
    assert detail["best_value"] is None


def test_importances_name_the_searched_parameters(create, auth_client) -> None:
    body = create(trials=16).json()
    run_trials(body["id"])
    importances = auth_client.get(f"{OPTIMIZATIONS}/{body['id']}").json()["importances"]
    assert set(importances) == {"fast", "slow"}
    assert sum(importances.values()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"space": {}}, "invalid_space", "space"),
        ({"space": {"nope": {"low": 1, "high": 2}}}, "invalid_space", "nope"),
        ({"space": {"fast": {"low": 9, "high": 3}}}, "invalid_space", "fast"),
        ({"space": {"fast": {"low": 1, "high": 10_000}}}, "invalid_space", "fast"),
        ({"space": {"fast": {"low": 3, "high": 9, "step": 0.5}}}, "invalid_space", "fast"),
        ({"space": {"ma": {"low": 1, "high": 2}}}, "invalid_space", "ma"),
        ({"space": {"ma": {"choices": ["sma", "wma!"]}}}, "invalid_space", "ma"),
        ({"params": {"ma": "sma", "fast": 5}}, "invalid_space", "fast"),
        ({"objective": "luck"}, "invalid_objective", "objective"),
        ({"objective": {"sharpe": -1}}, "invalid_objective", "objective"),
        ({"objective": ["sharpe"] * 4}, "invalid_objective", "objective"),
        ({"sampler": "cmaes"}, "validation_error", "sampler"),
        ({"trials": 0}, "validation_error", "trials"),
        ({"trials": "many"}, "validation_error", "trials"),
        (
            {"space": {"fast": {"low": 3.5, "high": 9.5}}, "sampler": "grid"},
            "invalid_space",
            "fast",
        ),
    ],
)
def test_a_bad_request_is_refused_and_stores_nothing(create, overrides, code, field) -> None:
    error = error_of(create(**overrides), 400)
    assert error["code"] == code
    assert field in error["details"], error
    assert not Optimization.objects.exists()


def test_a_grid_too_large_to_enumerate_is_refused_before_anything_is_built(create) -> None:
    # 499 x 1998 points: counted from the bounds, never listed
    space = {"fast": {"low": 2, "high": 500}, "slow": {"low": 3, "high": 2000}}
    error = error_of(create(space=space, sampler="grid"), 400)
    assert error["code"] == "grid_too_large"
    assert "space" in error["details"]
    assert not Optimization.objects.exists()


def test_an_unknown_symbol_is_refused(create) -> None:
    assert error_of(create(symbol="NOPE/USDT"), 400)["code"] == "unknown_symbol"


def test_cancel_stops_new_trials(create, auth_client) -> None:
    body = create(trials=20).json()
    response = auth_client.post(f"{OPTIMIZATIONS}/{body['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    run_trials(body["id"])
    assert not OptimizationTrial.objects.filter(optimization_id=body["id"]).exists()
    again = auth_client.post(f"{OPTIMIZATIONS}/{body['id']}/cancel")
    assert error_of(again, 409)["code"] == "not_active"


def test_another_users_optimization_is_a_404(create) -> None:
    body = create().json()
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=UserFactory()).key}")
    for url in ("", "/trials"):
        assert other.get(f"{OPTIMIZATIONS}/{body['id']}{url}").status_code == 404
    assert other.post(f"{OPTIMIZATIONS}/{body['id']}/cancel").status_code == 404
    assert other.delete(f"{OPTIMIZATIONS}/{body['id']}").status_code == 404
    assert other.get(OPTIMIZATIONS).json()["results"] == []
    assert Optimization.objects.filter(pk=body["id"]).exists()


def test_delete_removes_the_record_and_the_study(create, auth_client) -> None:
    body = create(trials=3).json()
    run_trials(body["id"], tasks=1)
    name = Optimization.objects.get(pk=body["id"]).study_name
    assert auth_client.delete(f"{OPTIMIZATIONS}/{body['id']}").status_code == 204
    assert not Optimization.objects.filter(pk=body["id"]).exists()
    names = [s.study_name for s in optuna.get_all_study_summaries(studies.storage())]
    assert name not in names


def test_a_trial_whose_worker_died_is_failed_and_the_rest_run(create, auth_client) -> None:
    body = create(trials=5).json()
    optimization = Optimization.objects.get(pk=body["id"])
    # A worker claimed a trial and died in it: its row says running, its task beats no more.
    Optimization.objects.filter(pk=optimization.pk).update(
        status=RunStatus.RUNNING, claimed_count=1, heartbeat_at="2000-01-01T00:00:00Z"
    )
    OptimizationTrial.objects.create(
        optimization=optimization, number=99, params={}, state=TrialState.RUNNING,
        started_at="2000-01-01T00:00:00Z",
    )  # fmt: skip
    assert optimizations_fail_stale() == 1
    run_trials(body["id"], tasks=1)
    detail = auth_client.get(f"{OPTIMIZATIONS}/{body['id']}").json()
    assert detail["status"] == "done"
    assert detail["failed_count"] == 1
    assert OptimizationTrial.objects.filter(optimization_id=body["id"]).count() == 5


def test_a_task_whose_time_is_up_hands_its_place_to_a_fresh_one(create, settings) -> None:
    # given: a task's budget (half the soft time limit) that is over at once
    settings.BACKTESTS_QUEUE = queue = f"test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 0
    optimization_id = create(trials=3).json()["id"]
    try:
        # when
        result = optimization_work(optimization_id=optimization_id)
        # then: it claimed nothing and sent one task to take over, on the broker for real
        pending = broker.pending_tasks([queue]) or []
    finally:
        get_redis().delete(queue)
    assert result == "0 trials, continued"
    assert [(task.name, task.args) for task in pending] == [
        ("backtests.tasks.run_optimization_trials_task", (optimization_id,))
    ]
    assert Optimization.objects.get(pk=optimization_id).claimed_count == 0


def test_an_optimization_whose_space_no_longer_fits_its_strategy_fails_saying_why(
    create, auth_client
) -> None:
    # given an optimisation whose strategy lost a searched parameter since it was created
    optimization_id = create().json()["id"]
    Optimization.objects.filter(pk=optimization_id).update(space={"gone": {"low": 1, "high": 2}})
    # when a worker takes it
    assert optimization_work(optimization_id=optimization_id) == "failed"
    # then it is failed with the reason, and no trial ran
    detail = auth_client.get(f"{OPTIMIZATIONS}/{optimization_id}").json()
    assert detail["status"] == "failed"
    assert "'gone' is not a parameter of ma_cross" in detail["error"]
    assert not OptimizationTrial.objects.filter(optimization_id=optimization_id).exists()


def test_the_largest_seed_offset_by_a_task_still_seeds_the_sampler(create, auth_client) -> None:
    body = create(seed=2**32 - 1, trials=2, sampler="random").json()
    optimization_work(optimization_id=body["id"], slot=2**32 - 1)
    assert auth_client.get(f"{OPTIMIZATIONS}/{body['id']}").json()["status"] == "done"
