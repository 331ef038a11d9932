"""The backtest schedule endpoints: create (and refusals), list, detail with its recent runs,
edit, delete, run now, the history through the backtest list, and scoping to the owner.

"Run now" backtests the last ``lookback_days`` before the present, so the runs that must find
candles use ``recent_candles``: the sample candles moved to end just before now.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from backtests import services
from backtests.models import Backtest, BacktestSchedule, RunStatus, epoch_ms
from markets.candle_csv import read_candle_file
from markets.candles import SAMPLE_PATH, candles_import
from markets.models import Candle
from markets.timeframes import timeframe_ms
from tests.backtests.api_helpers import (
    ACCOUNT,
    BACKTESTS,
    MA_CROSS,
    SCHEDULES,
    error_of,
    post_unsent,
)
from tests.backtests.conftest import EXCHANGE, SAMPLE_ROWS, SYMBOL, TIMEFRAME
from tests.backtests.run_helpers import create_with
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SCHEDULE_FIELDS = {
    "id", "name", "cron", "lookback_days", "enabled", "strategy", "params", "exchange", "symbol",
    "timeframe", "initial_cash", "fee_rate", "slippage_bps", "position_size", "stop_loss",
    "take_profit", "leverage", "margin_mode", "last_run_at", "created_at", "updated_at",
}  # fmt: skip
RUN_FIELDS = {"id", "status", "error", "start", "end", "created_at", "final_equity", "total_return"}


def schedule_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "nightly",
        "cron": "0 2 * * *",
        "lookback_days": 7,
        "strategy": "ma_cross",
        "params": MA_CROSS,
        "exchange": EXCHANGE,
        "symbol": SYMBOL,
        "timeframe": TIMEFRAME,
        **ACCOUNT,
        **overrides,
    }


@pytest.fixture
def recent_candles(strategy_catalogue: None) -> datetime:
    """The sample candles shifted so that the last one is the last closed candle; returns the
    first one's open time."""
    rows = read_candle_file(SAMPLE_PATH, timeframe=TIMEFRAME).rows[:SAMPLE_ROWS]
    step = timeframe_ms(TIMEFRAME)
    last_closed = int(timezone.now().timestamp() * 1000) // step * step - step
    shift = last_closed - rows[-1].open_time
    moved = [row._replace(open_time=row.open_time + shift) for row in rows]
    candles_import(exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, rows=moved)
    return datetime.fromtimestamp(moved[0].open_time / 1000, tz=UTC)


@pytest.fixture
def post(auth_client, django_capture_on_commit_callbacks):
    def send(url: str, body: Any = None) -> Any:
        return post_unsent(auth_client, django_capture_on_commit_callbacks, url, body)

    return send


@pytest.fixture
def create(post, strategy_catalogue):
    def create_schedule(**overrides: Any) -> dict[str, Any]:
        response = post(SCHEDULES, schedule_body(**overrides))
        assert response.status_code == 201, response.content
        created: dict[str, Any] = response.json()
        return created

    return create_schedule


def beat_task(schedule_id: int) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(
        name=f"backtest-schedule-{schedule_id}"
    )


def cron_of(task: PeriodicTask) -> str:
    timing = task.crontab
    assert timing is not None
    fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    return " ".join(getattr(timing, field) for field in fields)


def theirs() -> BacktestSchedule:
    return create_with(
        services.schedule_create,
        user=UserFactory(),
        name="theirs",
        cron="0 3 * * *",
        lookback_days=7,
        strategy="ma_cross",
        params=MA_CROSS,
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        initial_cash=Decimal(10000),
        fee_rate=Decimal("0.001"),
    )


# --- create ------------------------------------------------------------------------------------


def test_create_answers_201_with_the_schedule_and_its_beat_task(create):
    body = create(cron="30 4 * * 1", enabled=False, stop_loss=None)
    assert set(body) == SCHEDULE_FIELDS | {"recent_runs"}
    assert body["recent_runs"] == []
    assert (body["name"], body["cron"], body["lookback_days"]) == ("nightly", "30 4 * * 1", 7)
    assert body["enabled"] is False
    assert body["params"] == {**MA_CROSS, "allow_short": False}
    assert (body["initial_cash"], body["fee_rate"], body["stop_loss"]) == ("10000", "0.001", None)
    assert body["last_run_at"] is None
    task = beat_task(body["id"])
    assert cron_of(task) == "30 4 * * 1"
    assert task.enabled is False
    assert json.loads(task.kwargs) == {"schedule_id": body["id"]}


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        ({"cron": "every night"}, 400, "invalid_cron", "cron"),
        ({"cron": "0 25 * * *"}, 400, "invalid_cron", "cron"),
        ({"cron": "0 2 * *"}, 400, "invalid_cron", "cron"),
        ({"cron": 5}, 400, "invalid_cron", "cron"),
        ({"lookback_days": 0}, 400, "validation_error", "lookback_days"),
        ({"lookback_days": 3651}, 400, "validation_error", "lookback_days"),
        ({"lookback_days": "a week"}, 400, "validation_error", "lookback_days"),
        ({"name": ""}, 400, "validation_error", "name"),
        ({"name": "n" * 101}, 400, "validation_error", "name"),
        ({"enabled": "maybe"}, 400, "validation_error", "enabled"),
        ({"initial_cash": 0}, 400, "validation_error", "initial_cash"),
        ({"strategy": "nope"}, 400, "unknown_strategy", "strategy"),
        ({"params": {"fast": 40, "slow": 20}}, 400, "invalid_params", "slow"),
        ({"symbol": "NOPE/USDT"}, 400, "unknown_symbol", None),
    ],
)
def test_a_refused_schedule_is_an_error_and_writes_nothing(
    post, strategy_catalogue, overrides, status, code, field
):
    response = post(SCHEDULES, schedule_body(**overrides))
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    if field is not None:
        assert field in error["details"]
    assert BacktestSchedule.objects.count() == 0
    assert not PeriodicTask.objects.filter(name__startswith="backtest-schedule-").exists()


def test_a_second_schedule_of_the_same_name_is_a_409(post, create):
    create()
    response = post(SCHEDULES, schedule_body(cron="0 5 * * *"))
    assert error_of(response, 409)["code"] == "duplicate_name"
    assert BacktestSchedule.objects.count() == 1


def test_malformed_json_is_a_400(auth_client, strategy_catalogue):
    response = auth_client.post(SCHEDULES, data="[", content_type="application/json")
    assert error_of(response, 400)["code"] == "malformed_request"
    assert BacktestSchedule.objects.count() == 0


# --- list, detail, edit, delete ----------------------------------------------------------------


def test_the_list_is_paginated_newest_first_and_only_the_users(auth_client, create):
    ids = [create(name=f"s{i}")["id"] for i in range(3)]
    theirs()
    page = auth_client.get(SCHEDULES, {"page_size": 2}).json()
    assert page["count"] == 3
    assert [item["id"] for item in page["results"]] == [ids[2], ids[1]]
    assert all(set(item) == SCHEDULE_FIELDS for item in page["results"])
    assert [item["id"] for item in auth_client.get(page["next"]).json()["results"]] == [ids[0]]
    assert auth_client.get(SCHEDULES, {"page_size": 1000}).status_code == 400


def test_patch_renames_re_times_resizes_and_pauses(auth_client, create):
    schedule_id = create()["id"]
    response = auth_client.patch(
        f"{SCHEDULES}/{schedule_id}",
        {"name": "weekly", "cron": "15 6 * * 0", "lookback_days": 30, "enabled": False},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["cron"], body["lookback_days"], body["enabled"]) == (
        "weekly", "15 6 * * 0", 30, False,
    )  # fmt: skip
    assert "recent_runs" in body
    task = beat_task(schedule_id)
    assert cron_of(task) == "15 6 * * 0"
    assert task.enabled is False
    # one field at a time leaves the others as they are
    resumed = auth_client.patch(f"{SCHEDULES}/{schedule_id}", {"enabled": True}, format="json")
    assert (resumed.json()["name"], resumed.json()["enabled"]) == ("weekly", True)
    assert beat_task(schedule_id).enabled is True


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"cron": "61 * * * *"}, 400, "invalid_cron"),
        ({"lookback_days": 0}, 400, "validation_error"),
        ({"name": None}, 400, "validation_error"),
        ({"enabled": "sometimes"}, 400, "validation_error"),
        ({"name": "taken"}, 409, "duplicate_name"),
    ],
)
def test_a_refused_patch_changes_nothing(auth_client, create, change, status, code):
    create(name="taken")
    schedule = create()
    response = auth_client.patch(f"{SCHEDULES}/{schedule['id']}", change, format="json")
    assert response.status_code == status
    assert error_of(response)["code"] == code
    stored = BacktestSchedule.objects.get(pk=schedule["id"])
    assert (stored.name, stored.cron, stored.lookback_days, stored.enabled) == (
        "nightly", "0 2 * * *", 7, True,
    )  # fmt: skip
    assert cron_of(beat_task(schedule["id"])) == "0 2 * * *"


def test_delete_removes_the_schedule_and_its_beat_task_but_keeps_its_runs(
    auth_client, post, create, recent_candles
):
    schedule_id = create()["id"]
    run_id = post(f"{SCHEDULES}/{schedule_id}/run").json()["id"]
    response = auth_client.delete(f"{SCHEDULES}/{schedule_id}")
    assert response.status_code == 204
    assert not BacktestSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(name=f"backtest-schedule-{schedule_id}").exists()
    run = auth_client.get(f"{BACKTESTS}/{run_id}").json()
    assert run["schedule"] is None
    assert auth_client.get(f"{SCHEDULES}/{schedule_id}").status_code == 404
    assert auth_client.get(BACKTESTS, {"schedule": schedule_id}).status_code == 404


# --- run now, recent runs, history -------------------------------------------------------------


def test_run_now_backtests_the_lookback_up_to_the_last_closed_candle(
    auth_client, post, create, recent_candles
):
    schedule_id = create(lookback_days=5, take_profit="0.05")["id"]
    response = post(f"{SCHEDULES}/{schedule_id}/run")
    assert response.status_code == 201
    run = response.json()
    assert (run["status"], run["schedule"]) == ("queued", schedule_id)
    assert (run["strategy"], run["params"]) == ("ma_cross", {**MA_CROSS, "allow_short": False})
    assert run["take_profit"] == "0.05"
    end = datetime.fromisoformat(run["end"])
    start = datetime.fromisoformat(run["start"])
    assert end - start == timedelta(days=5)
    step = timedelta(milliseconds=timeframe_ms(TIMEFRAME))
    assert timezone.now() - step <= end <= timezone.now()
    stored = Candle.objects.filter(
        open_time__gte=epoch_ms(start), open_time__lt=epoch_ms(end), timeframe=TIMEFRAME
    ).count()
    # 5 days of 5m candles; one fewer if a candle closed between the fixture and the request
    assert run["candle_count"] == stored
    assert stored in (5 * 24 * 12, 5 * 24 * 12 - 1)
    assert BacktestSchedule.objects.get(pk=schedule_id).last_run_at is not None
    # it runs like any backtest
    assert services.backtest_execute(backtest_id=run["id"]) == RunStatus.DONE


def test_the_detail_shows_the_last_ten_runs_with_their_results(
    auth_client, post, create, recent_candles, settings
):
    schedule_id = create()["id"]
    run_ids = []
    for _ in range(12):
        run_id = post(f"{SCHEDULES}/{schedule_id}/run").json()["id"]
        services.backtest_execute(backtest_id=run_id)
        run_ids.append(run_id)
    response = auth_client.get(f"{SCHEDULES}/{schedule_id}")
    assert response.status_code == 200
    recent = response.json()["recent_runs"]
    assert [run["id"] for run in recent] == run_ids[::-1][:10]
    newest = Backtest.objects.get(pk=run_ids[-1])
    assert newest.metrics is not None
    assert set(recent[0]) == RUN_FIELDS
    assert recent[0]["status"] == "done"
    assert recent[0]["final_equity"] == newest.metrics["final_equity"]
    assert recent[0]["total_return"] == newest.metrics["total_return"]
    # the whole history is the backtest list filtered by schedule
    history = auth_client.get(BACKTESTS, {"schedule": schedule_id}).json()
    assert [item["id"] for item in history["results"]] == run_ids[::-1]


def test_the_history_holds_only_the_schedules_runs(auth_client, post, create, recent_candles):
    schedule_id = create()["id"]
    other_id = create(name="other")["id"]
    mine = post(f"{SCHEDULES}/{schedule_id}/run").json()["id"]
    post(f"{SCHEDULES}/{other_id}/run")
    history = auth_client.get(BACKTESTS, {"schedule": schedule_id}).json()
    assert [item["id"] for item in history["results"]] == [mine]


def test_run_now_without_candles_in_the_lookback_is_kept_as_a_failed_run(
    auth_client, post, create, sample_candles
):
    # the sample candles are years old: the last 7 days hold none
    schedule_id = create()["id"]
    response = post(f"{SCHEDULES}/{schedule_id}/run")
    assert response.status_code == 201
    run = response.json()
    assert run["status"] == "failed"
    assert "No BTC/USDT 5m candles" in run["error"]
    recent = auth_client.get(f"{SCHEDULES}/{schedule_id}").json()["recent_runs"]
    assert [(r["id"], r["status"], r["final_equity"]) for r in recent] == [
        (run["id"], "failed", None)
    ]


def test_run_now_of_a_paused_schedule_is_a_409(post, create, recent_candles):
    schedule_id = create(enabled=False)["id"]
    response = post(f"{SCHEDULES}/{schedule_id}/run")
    assert error_of(response, 409)["code"] == "schedule_disabled"
    assert Backtest.objects.count() == 0


# --- another user's schedule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("get", "", None), ("patch", "", {"name": "mine now", "enabled": False}),
     ("delete", "", None), ("post", "/run", None)],
)  # fmt: skip
def test_another_users_schedule_is_a_404_everywhere(
    auth_client, django_capture_on_commit_callbacks, recent_candles, method, suffix, body
):
    schedule = theirs()
    with django_capture_on_commit_callbacks(execute=False):
        response = getattr(auth_client, method)(
            f"{SCHEDULES}/{schedule.pk}{suffix}", body, format="json"
        )
    assert error_of(response, 404)["code"] == "not_found"
    stored = BacktestSchedule.objects.get(pk=schedule.pk)
    assert (stored.name, stored.enabled) == ("theirs", True)
    assert beat_task(schedule.pk).enabled is True
    assert Backtest.objects.count() == 0


def test_another_users_schedule_history_is_a_404(auth_client, strategy_catalogue):
    schedule = theirs()
    response = auth_client.get(BACKTESTS, {"schedule": schedule.pk})
    assert error_of(response, 404)["code"] == "not_found"
