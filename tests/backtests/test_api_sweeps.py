"""The sweep endpoints: create (and every refusal), the ranked results of a sweep run in-process,
its failures, list, cancel, delete, and scoping to the owner."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from backtests import services
from backtests.models import RunStatus, Sweep, SweepRun
from backtests.services import candle_cache
from markets.models import Candle
from tests.backtests.api_helpers import SWEEPS, backtest_body, error_of, post_unsent
from tests.backtests.run_helpers import create_sweep
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

GRID = {"fast": [5, 10, 20], "slow": [30, 50]}
SUMMARY_FIELDS = {
    "id", "status", "progress", "error", "strategy", "params", "exchange", "symbol", "timeframe",
    "start", "end", "initial_cash", "fee_rate", "slippage_bps", "position_size", "stop_loss",
    "take_profit", "leverage", "margin_mode", "grid", "rank_by", "combination_count",
    "skipped_count", "done_count",
    "failed_count", "candle_count", "created_at", "started_at", "finished_at",
}  # fmt: skip
DETAIL_FIELDS = SUMMARY_FIELDS | {"results", "failures"}


@pytest.fixture(autouse=True)
def _forget_cached_candles() -> Iterator[None]:
    # Workers keep a sweep's candles by sweep id; ids come back after a test's rollback, so a
    # test must not find the candles of an earlier test's sweep.
    candle_cache.forget()
    yield
    candle_cache.forget()


@pytest.fixture
def create(auth_client, django_capture_on_commit_callbacks, sample_candles):
    """POST a sweep of the sample market (``overrides`` replace body fields)."""

    def post(**overrides: Any) -> Any:
        body = {**backtest_body(sample_candles, params={}, grid=GRID), **overrides}
        return post_unsent(auth_client, django_capture_on_commit_callbacks, SWEEPS, body)

    return post


def run_all(sweep_id: int) -> None:
    """What the workers do: every combination (the last one recorded closes the sweep)."""
    for run_id in SweepRun.objects.filter(sweep_id=sweep_id).values_list("pk", flat=True):
        services.sweep_run_execute(run_id=run_id)
    services.sweep_finish(sweep_id=sweep_id)


def ranked_values(results: list[dict[str, Any]], metric: str) -> list[float]:
    return [result["metrics"][metric] for result in results]


# --- create ------------------------------------------------------------------------------------


def test_create_answers_201_with_the_queued_sweep_and_its_combinations(create):
    response = create(params={"ma": "ema"}, rank_by="total_return")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == DETAIL_FIELDS
    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["grid"] == GRID
    assert body["params"] == {"ma": "ema"}
    assert body["rank_by"] == "total_return"
    assert (body["combination_count"], body["skipped_count"]) == (6, 0)
    assert (body["done_count"], body["failed_count"]) == (0, 0)
    assert (body["results"], body["failures"]) == ([], [])
    runs = SweepRun.objects.filter(sweep_id=body["id"]).order_by("seq")
    assert [run.params for run in runs] == [
        {"fast": fast, "slow": slow, "ma": "ema", "allow_short": False}
        for fast in (5, 10, 20)
        for slow in (30, 50)
    ]


def test_ranges_are_expanded_and_invalid_combinations_skipped(create):
    response = create(grid={"fast": {"start": 5, "stop": 25, "step": 10}, "slow": [20, 30]})
    assert response.status_code == 201
    body = response.json()
    assert body["grid"] == {"fast": [5, 15, 25], "slow": [20, 30]}
    # fast must be below slow: (25, 20) is skipped
    assert (body["combination_count"], body["skipped_count"]) == (5, 1)
    assert body["rank_by"] == "sharpe"  # the default


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"grid": {"fast": list(range(2, 50)), "slow": list(range(60, 90))}}, "grid_too_large",
         "grid"),
        ({"grid": {"speed": [1, 2]}}, "invalid_grid", "speed"),
        ({"grid": {"fast": []}}, "invalid_grid", "fast"),
        ({"grid": {"fast": ["a", 5]}}, "invalid_grid", "fast"),
        ({"grid": {"fast": {"start": 5, "stop": 1, "step": 1}}}, "invalid_grid", "fast"),
        ({"grid": {"fast": [40, 50], "slow": [10, 20]}}, "invalid_grid", "grid"),
        ({"grid": {"fast": [5, 10]}, "params": {"fast": 3}}, "invalid_grid", "fast"),
        ({"params": {"ma": "wma"}}, "invalid_params", "ma"),
        ({"grid": {}}, "invalid_grid", None),
        ({"grid": [5, 10]}, "validation_error", "grid"),
        ({"grid": None}, "validation_error", "grid"),
        ({"rank_by": "luck"}, "validation_error", "rank_by"),
        ({"rank_by": "trade_count"}, "validation_error", "rank_by"),
        ({"fee_rate": 1}, "validation_error", "fee_rate"),
        ({"strategy": "nope"}, "unknown_strategy", "strategy"),
        ({"symbol": "NOPE/USDT"}, "unknown_symbol", None),
        ({"start": "2015-01-01T00:00:00Z", "end": "2015-01-02T00:00:00Z"}, "empty_period",
         "start"),
        ({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "invalid_period",
         "end"),
    ],
)  # fmt: skip
def test_a_refused_sweep_is_a_400_and_writes_nothing(create, overrides, code, field):
    response = create(**overrides)
    error = error_of(response, 400)
    assert error["code"] == code
    if field is not None:
        assert field in error["details"]
    assert Sweep.objects.count() == 0
    assert SweepRun.objects.count() == 0


def test_more_combinations_than_the_setting_is_grid_too_large(create, settings):
    settings.SWEEP_MAX_COMBINATIONS = 5
    response = create()
    assert error_of(response, 400)["code"] == "grid_too_large"
    assert "6 combinations" in error_of(response)["message"]
    assert Sweep.objects.count() == 0


def test_malformed_json_is_a_400(auth_client, sample_candles):
    response = auth_client.post(SWEEPS, data="{grid: ", content_type="application/json")
    assert error_of(response, 400)["code"] == "malformed_request"
    assert Sweep.objects.count() == 0


# --- results -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rank_by", ["total_return", "final_equity", "max_drawdown"])
def test_results_are_ranked_best_first_by_rank_by(auth_client, create, rank_by):
    sweep_id = create(rank_by=rank_by).json()["id"]
    run_all(sweep_id)
    response = auth_client.get(f"{SWEEPS}/{sweep_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["progress"], body["error"]) == ("done", 1.0, "")
    assert (body["done_count"], body["failed_count"]) == (6, 0)
    results = body["results"]
    assert [result["rank"] for result in results] == [1, 2, 3, 4, 5, 6]
    assert all(result["status"] == "done" for result in results)
    values = ranked_values(results, rank_by)
    assert values == sorted(values, reverse=True)  # max_drawdown is negative: shallowest first
    assert len(set(values)) > 1  # the combinations really differ
    combos = sorted((r["params"]["fast"], r["params"]["slow"]) for r in results)
    assert combos == sorted((fast, slow) for fast in (5, 10, 20) for slow in (30, 50))
    assert body["failures"] == []


def test_a_lower_is_better_metric_ranks_ascending(auth_client, create):
    sweep_id = create(rank_by="max_drawdown_duration").json()["id"]
    run_all(sweep_id)
    values = ranked_values(auth_client.get(f"{SWEEPS}/{sweep_id}").json()["results"],
                           "max_drawdown_duration")  # fmt: skip
    assert values == sorted(values)


def test_ranking_puts_runs_without_a_value_last(auth_client, create, sample_candles):
    # Sharpe needs varying returns: a slow average longer than the period (5 days, 1440 candles)
    # never warms up, so those combinations never trade and have no Sharpe.
    end = sample_candles.start + timedelta(days=5)
    response = create(grid={"fast": [5, 10], "slow": [30, 2000]}, end=end.isoformat())
    sweep_id = response.json()["id"]
    run_all(sweep_id)
    results = auth_client.get(f"{SWEEPS}/{sweep_id}").json()["results"]
    values = ranked_values(results, "sharpe")
    known = [value for value in values if value is not None]
    assert len(known) == 2
    assert values == known + [None] * (len(values) - len(known))
    assert known == sorted(known, reverse=True)


def test_limit_gives_the_best_n(auth_client, create):
    sweep_id = create(rank_by="total_return").json()["id"]
    run_all(sweep_id)
    everything = auth_client.get(f"{SWEEPS}/{sweep_id}").json()["results"]
    best_two = auth_client.get(f"{SWEEPS}/{sweep_id}", {"limit": 2}).json()["results"]
    assert best_two == everything[:2]
    for bad in (0, -1, "all"):
        response = auth_client.get(f"{SWEEPS}/{sweep_id}", {"limit": bad})
        assert set(error_of(response, 400)["details"]) == {"limit"}


def test_failed_combinations_are_listed_apart_with_their_error(auth_client, create):
    sweep_id = create(rank_by="total_return").json()["id"]
    first, *rest = SweepRun.objects.filter(sweep_id=sweep_id).order_by("seq")
    services.sweep_run_execute(run_id=first.pk)
    # the candles disappear after the first combination ran (and the worker forgets them)
    Candle.objects.all().delete()
    candle_cache.forget()
    for run in rest:
        services.sweep_run_execute(run_id=run.pk)
    services.sweep_finish(sweep_id=sweep_id)
    body = auth_client.get(f"{SWEEPS}/{sweep_id}").json()
    assert body["status"] == "done"
    assert (body["done_count"], body["failed_count"], body["progress"]) == (1, 5, 1.0)
    assert [result["params"] for result in body["results"]] == [first.params]
    assert [failure["params"] for failure in body["failures"]] == [run.params for run in rest]
    assert all("no longer stored" in failure["error"] for failure in body["failures"])
    assert all(set(failure) == {"params", "error"} for failure in body["failures"])


def test_a_sweep_where_everything_failed_is_failed(auth_client, create):
    sweep_id = create().json()["id"]
    Candle.objects.all().delete()
    run_all(sweep_id)
    body = auth_client.get(f"{SWEEPS}/{sweep_id}").json()
    assert body["status"] == "failed"
    assert "Every combination failed" in body["error"]
    assert body["results"] == []
    assert len(body["failures"]) == 6


def test_metrics_of_results_are_json_numbers_or_null(auth_client, create):
    sweep_id = create().json()["id"]
    run_all(sweep_id)
    for result in auth_client.get(f"{SWEEPS}/{sweep_id}").json()["results"]:
        for key, value in result["metrics"].items():
            assert value is None or (isinstance(value, int | float) and math.isfinite(value)), key


# --- list, cancel, delete ----------------------------------------------------------------------


def test_the_list_is_paginated_newest_first_and_filtered(auth_client, create):
    ids = [create().json()["id"] for _ in range(3)]
    run_all(ids[1])
    page = auth_client.get(SWEEPS, {"page_size": 2}).json()
    assert page["count"] == 3
    assert [item["id"] for item in page["results"]] == [ids[2], ids[1]]
    assert all(set(item) == SUMMARY_FIELDS for item in page["results"])
    assert [item["id"] for item in auth_client.get(page["next"]).json()["results"]] == [ids[0]]
    done = auth_client.get(SWEEPS, {"status": "done"}).json()
    assert [item["id"] for item in done["results"]] == [ids[1]]
    assert auth_client.get(SWEEPS, {"page_size": 101}).status_code == 400
    assert auth_client.get(SWEEPS, {"strategy": "macd"}).json()["count"] == 0


def test_cancel_of_a_queued_sweep_cancels_it_and_its_combinations(auth_client, create):
    sweep_id = create().json()["id"]
    response = auth_client.post(f"{SWEEPS}/{sweep_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    statuses = set(SweepRun.objects.filter(sweep_id=sweep_id).values_list("status", flat=True))
    assert statuses == {RunStatus.CANCELLED}
    # a worker that gets a combination afterwards skips it
    run = SweepRun.objects.filter(sweep_id=sweep_id).first()
    assert run is not None
    assert services.sweep_run_execute(run_id=run.pk) == "skipped"
    again = auth_client.post(f"{SWEEPS}/{sweep_id}/cancel")
    assert error_of(again, 409)["code"] == "not_active"


def test_cancel_of_a_finished_sweep_is_a_409(auth_client, create):
    sweep_id = create().json()["id"]
    run_all(sweep_id)
    response = auth_client.post(f"{SWEEPS}/{sweep_id}/cancel")
    assert error_of(response, 409)["details"] == {"status": ["done"]}
    assert Sweep.objects.get(pk=sweep_id).status == RunStatus.DONE


def test_delete_removes_the_sweep_and_its_combinations(auth_client, create):
    sweep_id = create().json()["id"]
    response = auth_client.delete(f"{SWEEPS}/{sweep_id}")
    assert response.status_code == 204
    assert Sweep.objects.count() == 0
    assert SweepRun.objects.count() == 0
    assert auth_client.get(f"{SWEEPS}/{sweep_id}").status_code == 404


# --- another user's sweep ----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "suffix"), [("get", ""), ("delete", ""), ("post", "/cancel")])
def test_another_users_sweep_is_a_404_everywhere(auth_client, sample_candles, method, suffix):
    sweep = create_sweep(UserFactory(), sample_candles, grid=GRID, params={})
    response = getattr(auth_client, method)(f"{SWEEPS}/{sweep.pk}{suffix}")
    assert error_of(response, 404)["code"] == "not_found"
    assert Sweep.objects.get(pk=sweep.pk).status == RunStatus.QUEUED
    assert SweepRun.objects.filter(sweep=sweep, status=RunStatus.QUEUED).count() == 6
    assert auth_client.get(SWEEPS).json()["count"] == 0


def test_a_range_written_5_15_is_refused_with_the_accepted_syntax(create):
    # given a range written as a trader might type it
    response = create(grid={"fast": "5-15"})

    # then the error names the shapes the grid takes, and nothing is stored
    error = error_of(response, 400)
    assert error["code"] == "invalid_grid"
    assert error["details"]["fast"] == [
        'give a list of values such as [5, 10, 20] or a range such as {"start": 5, "stop": 50, '
        '"step": 5} (stop included); got "5-15"'
    ]
    assert not Sweep.objects.exists()
    # a grid that is not an object at all shows the shape of one
    message = " ".join(error_of(create(grid=[5, 15]), 400)["details"]["grid"])
    assert '{"fast": [5, 10], "slow": {"start": 20, "stop": 50, "step": 10}}' in message
