"""The walk-forward endpoints: create (and every refusal, which stores nothing), a walk-forward
of 4 windows run in-process by the same task bodies the workers run (each window's trials, then
each window's out-of-sample task) to ``done`` with its stitched out-of-sample equity and each
window's parameters; a window that fails, cancel, delete, the quota, the housekeeping and
scoping to the owner. Real Optuna storage on the test database's server. The tests run in the
test transaction, so nothing is sent on commit: the task bodies are called here instead."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import optuna
import pytest
from django.http import Http404
from rest_framework.test import APIClient

from accounts.services import api_token_issue
from backtests.engine import simulate
from backtests.events import walk_forward_snapshot
from backtests.models import (
    Backtest,
    Optimization,
    RunStatus,
    WalkForward,
    WalkForwardWindow,
    epoch_ms,
)
from backtests.services import candle_cache, studies
from backtests.services.optimization_trials import optimization_work
from backtests.services.walk_forward_windows import (
    walk_forward_window_run,
    walk_forwards_fail_stale,
)
from markets import selectors as market_selectors
from strategies.registry import active
from tests.backtests.api_helpers import backtest_body, error_of, post_unsent
from tests.backtests.walk_forward_helpers import (
    SPACE,
    WINDOWS,
    run_optimizations,
    run_windows,
    windows_of,
)
from tests.factories import UserFactory
from tradingbot import broker
from tradingbot.redis import get_redis

pytestmark = pytest.mark.django_db

WALK_FORWARDS = "/api/walk-forwards"


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Ids come back after a flush: a test must not find an earlier test's candles or study.
    candle_cache.forget()
    yield
    candle_cache.forget()


@pytest.fixture
def body(sample_candles) -> dict[str, Any]:
    return {
        **backtest_body(sample_candles, params={"ma": "sma"}),
        "space": SPACE,
        "trials": 5,
        "seed": 7,
        **WINDOWS,
    }


@pytest.fixture
def create(auth_client, django_capture_on_commit_callbacks, body):
    """POST a walk-forward of MA Cross on the sample market (``overrides`` replace fields)."""

    def post(**overrides: Any) -> Any:
        request = {**body, **overrides}
        return post_unsent(auth_client, django_capture_on_commit_callbacks, WALK_FORWARDS, request)

    return post


def test_a_walk_forward_of_4_windows_reaches_done_with_its_out_of_sample_equity(
    create, auth_client, sample_candles
) -> None:
    # given
    response = create()
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["status"], created["window_count"], created["trials"]) == ("queued", 4, 5)
    assert created["trial_count"] == 20
    assert [window["number"] for window in created["windows"]] == [1, 2, 3, 4]
    # when: the workers optimise every window, then run each window's out-of-sample period
    run_optimizations(created["id"])
    assert WalkForward.objects.get(pk=created["id"]).status == RunStatus.RUNNING
    run_windows(created["id"])
    # then
    detail = auth_client.get(f"{WALK_FORWARDS}/{created['id']}").json()
    assert detail["status"] == "done", detail
    assert detail["progress"] == 1.0
    windows = detail["windows"]
    assert len(windows) == 4
    for window in windows:
        assert window["status"] == "done"
        assert set(window["params"]) == {"fast", "slow", "ma"}
        assert 3 <= window["params"]["fast"] <= 20
        assert window["in_sample_metrics"]["total_return"] is not None
        assert window["out_of_sample_metrics"]["final_equity"] > 0
        optimization = Optimization.objects.get(pk=window["optimization_id"])
        assert optimization.best_params == window["params"]
        assert window["in_sample_value"] == optimization.best_value
    # the stitched out-of-sample equity compounds the windows, from the first out-of-sample day
    equity = detail["equity"]
    first_out = epoch_ms(sample_candles.start + timedelta(days=4))
    assert equity[0] == [first_out, 10000.0]
    assert equity[-1][0] < epoch_ms(sample_candles.start + timedelta(days=12))
    assert equity[-1][1] == pytest.approx(detail["metrics"]["final_equity"])
    growth = math.prod(1 + w["out_of_sample_metrics"]["total_return"] for w in windows)
    assert detail["metrics"]["total_return"] == pytest.approx(growth - 1)
    assert detail["trade_count"] == sum(w["out_of_sample_metrics"]["trade_count"] for w in windows)
    assert_overfitting_ratio(detail)


def assert_overfitting_ratio(detail: dict[str, Any]) -> None:
    """The definition (backtests.walk_forward), from the API's own figures."""
    in_sample = sum(
        w["in_sample_metrics"]["total_return"] * 365.25 / 4 for w in detail["windows"]
    ) / len(detail["windows"])
    out_of_sample = detail["metrics"]["total_return"] * 365.25 / (4 * 2)
    assert detail["in_sample_return"] == pytest.approx(in_sample)
    assert detail["out_of_sample_return"] == pytest.approx(out_of_sample)
    if in_sample > 0:
        assert detail["overfitting_ratio"] == pytest.approx(out_of_sample / in_sample)
    else:
        assert detail["overfitting_ratio"] is None


def test_each_window_trades_its_out_of_sample_days_after_its_in_sample_history(
    create, sample_candles
) -> None:
    walk_forward_id = create(anchored=True).json()["id"]
    run_optimizations(walk_forward_id)
    run_windows(walk_forward_id)

    for window in windows_of(walk_forward_id):
        # anchored: every in-sample period starts at the start
        assert window.in_sample_start == sample_candles.start
        history = market_selectors.candles_frame(
            exchange=sample_candles.exchange,
            symbol=sample_candles.symbol,
            timeframe=sample_candles.timeframe,
            start_ms=epoch_ms(window.in_sample_start),
            end_ms=epoch_ms(window.out_of_sample_end),
        )
        first = int((history["open_time"] < epoch_ms(window.out_of_sample_start)).sum())
        target = active().create("ma_cross", window.params).positions(history).to_numpy()
        walk_forward = WalkForward.objects.get(pk=walk_forward_id)
        expected = simulate(
            history.iloc[first:].reset_index(drop=True),
            target[first:],
            walk_forward.engine_settings(),
        )
        assert window.out_of_sample_metrics == pytest.approx(expected.metrics)
        assert window.out_of_sample_candles == len(history) - first


def test_progress_counts_the_trials_of_every_window(create, auth_client) -> None:
    walk_forward_id = create().json()["id"]
    first = windows_of(walk_forward_id)[0]

    optimization_work(optimization_id=first.optimization_id, worker="w0")

    detail = auth_client.get(f"{WALK_FORWARDS}/{walk_forward_id}").json()
    assert detail["status"] == "running"
    assert detail["trials_finished"] == 5
    assert detail["progress"] == pytest.approx(5 / (20 + 4))
    assert detail["windows"][0]["in_sample_progress"] == 1.0
    assert detail["windows"][1]["in_sample_progress"] == 0.0


def test_a_window_without_a_result_fails_the_walk_forward_and_stops_the_others(
    create, auth_client
) -> None:
    # given: no trial can make 10,000 trades, so no window has a best trial
    walk_forward_id = create(min_trades=10_000, trials=2).json()["id"]
    first, *others = windows_of(walk_forward_id)
    optimization_work(optimization_id=first.optimization_id, worker="w0")
    # when
    walk_forward_window_run(window_id=first.pk)
    # then
    detail = auth_client.get(f"{WALK_FORWARDS}/{walk_forward_id}").json()
    assert detail["status"] == "failed"
    assert detail["error"].startswith("Window 1 (")
    assert "fewer than 10000 trades" in detail["error"]
    statuses = [w["status"] for w in detail["windows"]]
    assert statuses == ["failed", "cancelled", "cancelled", "cancelled"]
    stopped = Optimization.objects.filter(pk__in=[w.optimization_id for w in others])
    assert set(stopped.values_list("status", flat=True)) == {RunStatus.CANCELLED}


def test_a_window_optimisation_cancelled_on_its_own_fails_the_walk_forward(
    create, auth_client
) -> None:
    walk_forward_id = create().json()["id"]
    second = windows_of(walk_forward_id)[1]

    cancelled = auth_client.post(f"/api/optimizations/{second.optimization_id}/cancel")
    walk_forward_window_run(window_id=second.pk)

    assert cancelled.status_code == 200
    detail = auth_client.get(f"{WALK_FORWARDS}/{walk_forward_id}").json()
    assert detail["status"] == "failed"
    assert "Window 2" in detail["error"]
    assert "its optimisation was cancelled" in detail["error"]


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"windows": 0}, "validation_error", "windows"),
        ({"windows": 21}, "validation_error", "windows"),
        ({"in_sample_days": 0}, "validation_error", "in_sample_days"),
        ({"out_of_sample_days": "two"}, "validation_error", "out_of_sample_days"),
        ({"anchored": "sometimes"}, "validation_error", "anchored"),
        ({"trials": 0}, "validation_error", "trials"),
        ({"space": {}}, "invalid_space", "space"),
        ({"objective": "luck"}, "invalid_objective", "objective"),
        ({"windows": 5, "out_of_sample_days": 3}, "period_too_short", "end"),
        ({"symbol": "NOPE/USDT"}, "unknown_symbol", "symbol"),
    ],
)
def test_a_bad_request_is_refused_and_stores_nothing(create, overrides, code, field) -> None:
    error = error_of(create(**overrides), 400)
    assert error["code"] == code
    assert field in error["details"] or code == "unknown_symbol", error
    assert not WalkForward.objects.exists()
    assert not Optimization.objects.exists()


def test_a_period_too_short_says_how_many_days_the_windows_need(create) -> None:
    error = error_of(create(windows=5, out_of_sample_days=3), 400)
    assert "need 19 days from start (4 + 5 × 3)" in error["message"]


def test_a_window_without_candles_is_refused_by_its_number(create, sample_candles) -> None:
    # given: the period starts 5 days before the first stored candle
    start = (sample_candles.start - timedelta(days=5)).isoformat()

    error = error_of(create(start=start, in_sample_days=3, windows=3), 400)

    assert error["code"] == "empty_window"
    assert error["message"].startswith("Window 1's in-sample period")
    assert "windows" in error["details"]
    assert not WalkForward.objects.exists()
    assert not Optimization.objects.exists()


def test_a_walk_forward_counts_once_against_the_quota(create, settings, body) -> None:
    # given: room for two active runs
    settings.BACKTEST_MAX_ACTIVE_PER_USER = 2
    assert create().status_code == 201  # four window optimisations, one walk-forward
    # when / then: one more run fits, a third does not
    assert create().status_code == 201
    error = error_of(create(), 429)
    assert error["code"] == "too_many_active_runs"
    assert WalkForward.objects.count() == 2
    assert Optimization.objects.count() == 8
    assert not Backtest.objects.exists()


def test_cancel_stops_the_windows_and_their_optimisations(create, auth_client) -> None:
    walk_forward_id = create().json()["id"]

    response = auth_client.post(f"{WALK_FORWARDS}/{walk_forward_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert {w["status"] for w in response.json()["windows"]} == {"cancelled"}
    optimizations = Optimization.objects.filter(walk_forward_window__walk_forward=walk_forward_id)
    assert set(optimizations.values_list("status", flat=True)) == {RunStatus.CANCELLED}
    run_optimizations(walk_forward_id)  # a task still queued finds nothing to run
    run_windows(walk_forward_id)
    assert WalkForward.objects.get(pk=walk_forward_id).status == RunStatus.CANCELLED
    again = auth_client.post(f"{WALK_FORWARDS}/{walk_forward_id}/cancel")
    assert error_of(again, 409)["code"] == "not_active"


def test_delete_removes_the_windows_their_optimisations_and_studies(create, auth_client) -> None:
    walk_forward_id = create(trials=2).json()["id"]
    run_optimizations(walk_forward_id)
    names = [w.optimization.study_name for w in windows_of(walk_forward_id) if w.optimization]

    assert auth_client.delete(f"{WALK_FORWARDS}/{walk_forward_id}").status_code == 204

    assert not WalkForward.objects.exists()
    assert not WalkForwardWindow.objects.exists()
    assert not Optimization.objects.exists()
    stored = {s.study_name for s in optuna.get_all_study_summaries(studies.storage())}
    assert not stored & set(names)


def test_another_users_walk_forward_is_a_404(create, auth_client) -> None:
    walk_forward_id = create().json()["id"]
    other = UserFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=other).key}")

    assert client.get(f"{WALK_FORWARDS}/{walk_forward_id}").status_code == 404
    assert client.post(f"{WALK_FORWARDS}/{walk_forward_id}/cancel").status_code == 404
    assert client.delete(f"{WALK_FORWARDS}/{walk_forward_id}").status_code == 404
    assert client.get(WALK_FORWARDS).json()["results"] == []
    with pytest.raises(Http404):
        walk_forward_snapshot(user=other, pk=walk_forward_id)
    assert WalkForward.objects.filter(pk=walk_forward_id, status=RunStatus.QUEUED).exists()
    listed = auth_client.get(WALK_FORWARDS).json()["results"]
    assert [row["id"] for row in listed] == [walk_forward_id]


def test_lost_window_tasks_and_workers_are_sent_again(create, auth_client, settings) -> None:
    # given: every window optimised, but the window tasks never sent (the commit that would
    # have sent them is the test's)
    walk_forward_id = create(trials=2).json()["id"]
    run_optimizations(walk_forward_id)
    windows = windows_of(walk_forward_id)
    assert {window.enqueued_at for window in windows} == {None}
    # and a window whose worker died in its out-of-sample run
    lost = windows[2]
    WalkForwardWindow.objects.filter(pk=lost.pk).update(
        status=RunStatus.RUNNING, attempts=1, heartbeat_at="2000-01-01T00:00:00Z"
    )
    settings.BACKTESTS_QUEUE = queue = f"test-{uuid.uuid4().hex[:8]}"
    try:
        # when
        sent = walk_forwards_fail_stale()
        again = walk_forwards_fail_stale()  # sent just now: not again
        pending = broker.pending_tasks([queue]) or []
    finally:
        get_redis().delete(queue)
    # then: every window's task went out again, on the broker for real, the lost one requeued
    assert (sent, again) == (4, 0)
    assert sorted((task.name, task.args) for task in pending) == [
        ("backtests.tasks.run_walk_forward_window_task", (window.pk,)) for window in windows
    ]
    assert WalkForwardWindow.objects.get(pk=lost.pk).status == RunStatus.QUEUED
    run_windows(walk_forward_id)
    assert WalkForwardWindow.objects.get(pk=lost.pk).attempts == 2
    assert auth_client.get(f"{WALK_FORWARDS}/{walk_forward_id}").json()["status"] == "done"
