"""The backtest endpoints: create (and every refusal), list, detail, trades, equity, cancel,
re-run, delete, scoping to the owner, and authentication of the whole backtests API.

Backtests run in the test process (``services.backtest_execute``); real workers are tested
elsewhere.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings

from backtests import services
from backtests.metrics import METRIC_KEYS
from backtests.models import Backtest, BacktestTrade, RunStatus
from strategies.models import Strategy as StrategyRow
from strategies.registry import active
from tests.backtests.api_helpers import (
    BACKTESTS,
    MA_CROSS,
    SCHEDULES,
    SWEEPS,
    backtest_body,
    decimal_text,
    error_of,
    post_unsent,
)
from tests.backtests.conftest import SampleMarket
from tests.backtests.run_helpers import create_backtest
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NO_CANDLES = SampleMarket(
    exchange="bitget",
    symbol="BTC/USDT",
    timeframe="5m",
    start=datetime(2023, 1, 1, tzinfo=UTC),
    end=datetime(2023, 1, 15, tzinfo=UTC),
    count=0,
)

DETAIL_FIELDS = {
    "id", "status", "progress", "error", "strategy", "params", "exchange", "symbol", "timeframe",
    "start", "end", "initial_cash", "fee_rate", "slippage_bps", "position_size", "stop_loss",
    "take_profit", "leverage", "margin_mode", "metrics", "candle_count", "trade_count",
    "schedule", "attempts", "created_at", "started_at", "finished_at",
}  # fmt: skip
TRADE_FIELDS = {
    "seq", "entry_time", "exit_time", "side", "qty", "entry_price", "exit_price", "fee", "pnl",
    "return", "exit_reason", "leverage", "funding",
}  # fmt: skip


@pytest.fixture
def create(auth_client, django_capture_on_commit_callbacks, sample_candles):
    """POST a backtest of the sample market (``overrides`` replace body fields)."""

    def post(**overrides: Any) -> Any:
        body = backtest_body(sample_candles, **overrides)
        return post_unsent(auth_client, django_capture_on_commit_callbacks, BACKTESTS, body)

    return post


@pytest.fixture
def create_invalid(auth_client, django_capture_on_commit_callbacks):
    """POST a backtest that the serializer must refuse: no candles are stored for it (a request
    that got past the serializer would be refused later, with another code)."""

    def post(**overrides: Any) -> Any:
        body = backtest_body(NO_CANDLES, **overrides)
        return post_unsent(auth_client, django_capture_on_commit_callbacks, BACKTESTS, body)

    return post


@pytest.fixture
def run(create):
    """Create a backtest through the API, run it in-process, return its id."""

    def create_and_run(**overrides: Any) -> int:
        response = create(**overrides)
        assert response.status_code == 201, response.content
        backtest_id: int = response.json()["id"]
        assert services.backtest_execute(backtest_id=backtest_id) == RunStatus.DONE
        return backtest_id

    return create_and_run


def theirs(market: Any) -> Backtest:
    """A finished backtest of another user (with trades), for the scoping tests."""
    backtest = create_backtest(UserFactory(), market)
    services.backtest_execute(backtest_id=backtest.pk)
    backtest.refresh_from_db()
    assert backtest.trade_count > 0
    return backtest


# --- create --------------------------------------------------------------------------------------


def test_create_answers_201_with_the_queued_backtest_in_full(create, sample_candles):
    # when
    response = create(params={"fast": 12, "slow": 40}, initial_cash="2500.50", fee_rate=0.0006)
    # then
    assert response.status_code == 201
    body = response.json()
    assert set(body) == DETAIL_FIELDS
    stored = Backtest.objects.get()
    assert body["id"] == stored.pk
    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["error"] == ""
    assert body["strategy"] == "ma_cross"
    assert body["params"] == {"fast": 12, "slow": 40, "ma": "sma", "allow_short": False}
    assert (body["exchange"], body["symbol"], body["timeframe"]) == ("bitget", "BTC/USDT", "5m")
    assert body["initial_cash"] == "2500.5"
    assert body["fee_rate"] == "0.0006"
    assert (body["slippage_bps"], body["position_size"]) == ("0", "1")
    assert (body["stop_loss"], body["take_profit"]) == (None, None)
    assert body["metrics"] is None
    assert body["candle_count"] == sample_candles.count
    assert (body["trade_count"], body["attempts"], body["schedule"]) == (0, 0, None)
    assert body["started_at"] is None
    assert body["finished_at"] is None
    assert stored.initial_cash == Decimal("2500.5")
    assert stored.start == sample_candles.start
    assert stored.end == sample_candles.end


def test_create_sends_the_run_only_once_the_request_commits(
    auth_client, django_capture_on_commit_callbacks, sample_candles
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = auth_client.post(BACKTESTS, backtest_body(sample_candles), format="json")
    assert response.status_code == 201
    # one sends the task to the queue, the other announces the queued backtest
    assert len(callbacks) == 2


def test_absent_stops_take_the_strategys_defaults_and_null_means_none(create, monkeypatch):
    # given: a strategy whose declared defaults are a 5 % stop loss and a 9 % take profit
    strategy_class = active().get("ma_cross")
    monkeypatch.setattr(strategy_class, "stop_loss", 0.05)
    monkeypatch.setattr(strategy_class, "take_profit", 0.09)
    # when
    defaulted = create().json()
    disabled = create(stop_loss=None, take_profit=None).json()
    given = create(stop_loss="0.02", take_profit=3).json()
    # then
    assert (defaulted["stop_loss"], defaulted["take_profit"]) == ("0.05", "0.09")
    assert (disabled["stop_loss"], disabled["take_profit"]) == (None, None)
    assert (given["stop_loss"], given["take_profit"]) == ("0.02", "3")
    assert Backtest.objects.get(pk=disabled["id"]).stop_loss is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"strategy": None}, "strategy"),
        ({"strategy": "x" * 65}, "strategy"),
        ({"params": "fast=10"}, "params"),
        ({"params": [10, 30]}, "params"),
        ({"exchange": "binance"}, "exchange"),
        ({"timeframe": "7m"}, "timeframe"),
        ({"symbol": ""}, "symbol"),
        ({"start": "yesterday"}, "start"),
        ({"end": 1700000000}, "end"),
        ({"initial_cash": "abc"}, "initial_cash"),
        ({"initial_cash": 0}, "initial_cash"),
        ({"initial_cash": "-1"}, "initial_cash"),
        ({"initial_cash": "1000000000000.01"}, "initial_cash"),
        ({"initial_cash": "NaN"}, "initial_cash"),
        ({"fee_rate": "0.2"}, "fee_rate"),
        ({"fee_rate": -0.001}, "fee_rate"),
        ({"fee_rate": True}, "fee_rate"),
        ({"slippage_bps": 1001}, "slippage_bps"),
        ({"slippage_bps": -1}, "slippage_bps"),
        ({"position_size": 0}, "position_size"),
        ({"position_size": "1.5"}, "position_size"),
        ({"stop_loss": 0}, "stop_loss"),
        ({"stop_loss": 1}, "stop_loss"),
        ({"take_profit": 0}, "take_profit"),
        ({"take_profit": "10.5"}, "take_profit"),
        ({"take_profit": "ten"}, "take_profit"),
    ],
)
def test_a_field_of_the_wrong_type_or_out_of_bounds_is_a_400_naming_it(
    create_invalid, overrides, field
):
    response = create_invalid(**overrides)
    error = error_of(response, 400)
    assert error["code"] == "validation_error"
    assert list(error["details"]) == [field]
    assert Backtest.objects.count() == 0


@pytest.mark.parametrize("missing", ["strategy", "exchange", "symbol", "timeframe", "start",
                                     "end", "initial_cash", "fee_rate"])  # fmt: skip
def test_a_missing_required_field_is_a_400_naming_it(
    auth_client, django_capture_on_commit_callbacks, missing
):
    body = backtest_body(NO_CANDLES)
    del body[missing]
    response = post_unsent(auth_client, django_capture_on_commit_callbacks, BACKTESTS, body)
    assert error_of(response, 400)["details"] == {missing: ["This field is required."]}
    assert Backtest.objects.count() == 0


def test_optional_settings_take_their_defaults(
    auth_client, django_capture_on_commit_callbacks, sample_candles
):
    body = backtest_body(sample_candles)
    for optional in ("params", "slippage_bps", "position_size"):
        del body[optional]
    response = post_unsent(auth_client, django_capture_on_commit_callbacks, BACKTESTS, body)
    assert response.status_code == 201
    created = response.json()
    assert created["params"] == {"fast": 10, "slow": 30, "ma": "sma", "allow_short": False}
    assert (created["slippage_bps"], created["position_size"]) == ("0", "1")


def test_a_body_that_is_not_json_is_a_400_malformed_request(auth_client):
    response = auth_client.post(
        BACKTESTS, data='{"strategy": "ma_cross",', content_type="application/json"
    )
    assert error_of(response, 400)["code"] == "malformed_request"
    assert Backtest.objects.count() == 0


def test_a_body_that_is_not_an_object_is_a_400(auth_client):
    response = auth_client.post(BACKTESTS, ["ma_cross"], format="json")
    assert error_of(response, 400)["code"] == "validation_error"
    assert Backtest.objects.count() == 0


@pytest.mark.parametrize(
    ("params", "details"),
    [
        ({"fast": "ten"}, {"fast"}),
        ({"fast": 10.5, "ma": "wma"}, {"fast", "ma"}),
        ({"fast": 50, "slow": 20}, {"slow"}),
        ({"fats": 10}, {"fats"}),
    ],
)
def test_bad_strategy_params_are_a_400_invalid_params_per_field(create, params, details):
    response = create(params=params)
    error = error_of(response, 400)
    assert error["code"] == "invalid_params"
    assert set(error["details"]) == details
    assert all(isinstance(m, str) for messages in error["details"].values() for m in messages)
    assert Backtest.objects.count() == 0


def shift_days(iso: str, days: int) -> str:
    return (datetime.fromisoformat(iso) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"strategy": "no_such_strategy"}, "unknown_strategy"),
        ({"symbol": "NOPE/USDT"}, "unknown_symbol"),
        ({"symbol": "ETH/USDT"}, "empty_period"),
        ({"start": "2015-01-01T00:00:00Z", "end": "2015-02-01T00:00:00Z"}, "empty_period"),
        ({"timeframe": "1h"}, "empty_period"),
    ],
)
def test_what_the_services_refuse_is_a_400_with_their_code(create, overrides, code):
    response = create(**overrides)
    assert error_of(response, 400)["code"] == code
    assert Backtest.objects.count() == 0


@pytest.mark.parametrize("days", [0, -1])
def test_a_period_ending_before_or_at_its_start_is_a_400(create, sample_candles, days):
    start = sample_candles.period()["start"]
    response = create(start=start, end=shift_days(start, days))
    assert error_of(response, 400)["code"] == "invalid_period"
    assert Backtest.objects.count() == 0


def test_a_period_with_too_many_candles_is_a_400(create, settings):
    settings.BACKTEST_MAX_CANDLES = 100
    response = create()
    assert error_of(response, 400)["code"] == "period_too_long"
    assert Backtest.objects.count() == 0


def test_a_strategy_staff_disabled_is_a_400(create):
    StrategyRow.objects.filter(key="ma_cross").update(enabled=False)
    response = create()
    assert error_of(response, 400)["code"] == "strategy_disabled"
    assert Backtest.objects.count() == 0


def test_more_active_runs_than_the_quota_is_a_429(create, settings):
    settings.BACKTEST_MAX_ACTIVE_PER_USER = 2
    assert create().status_code == 201
    assert create().status_code == 201
    response = create()
    assert error_of(response, 429)["code"] == "too_many_active_runs"
    assert Backtest.objects.count() == 2


# --- detail, trades, equity ----------------------------------------------------------------------


def test_a_finished_backtest_shows_its_metrics_and_counts(auth_client, run, sample_candles):
    backtest_id = run()
    response = auth_client.get(f"{BACKTESTS}/{backtest_id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_FIELDS  # no equity curve in the detail
    assert (body["status"], body["progress"], body["error"]) == ("done", 1.0, "")
    assert set(body["metrics"]) == set(METRIC_KEYS)
    assert body["trade_count"] == BacktestTrade.objects.filter(backtest_id=backtest_id).count()
    assert body["trade_count"] > 0
    assert body["metrics"]["trade_count"] == body["trade_count"]
    assert body["candle_count"] == sample_candles.count
    assert body["attempts"] == 1
    assert body["started_at"] <= body["finished_at"]


def test_the_trades_add_up_to_the_final_equity(auth_client, run):
    backtest_id = run()
    detail = auth_client.get(f"{BACKTESTS}/{backtest_id}").json()
    response = auth_client.get(f"{BACKTESTS}/{backtest_id}/trades", {"page_size": 1000})
    assert response.status_code == 200
    page = response.json()
    trades = page["results"]
    assert page["count"] == len(trades) == detail["trade_count"]
    assert [trade["seq"] for trade in trades] == list(range(len(trades)))
    for trade in trades:
        assert set(trade) == TRADE_FIELDS
        assert trade["side"] == "long"  # allow_short is off
        assert trade["entry_time"] <= trade["exit_time"]
        notional = Decimal(trade["qty"]) * Decimal(trade["entry_price"])
        assert trade["return"] == pytest.approx(float(Decimal(trade["pnl"]) / notional), rel=1e-6)
    assert trades[-1]["exit_reason"] in {"signal", "end"}
    total_pnl = sum(Decimal(trade["pnl"]) for trade in trades)
    gain = detail["metrics"]["final_equity"] - float(detail["initial_cash"])
    assert float(total_pnl) == pytest.approx(gain, abs=1e-6)


def test_trades_are_decimal_strings_as_stored(auth_client, run):
    backtest_id = run()
    first = auth_client.get(f"{BACKTESTS}/{backtest_id}/trades").json()["results"][0]
    stored = BacktestTrade.objects.get(backtest_id=backtest_id, seq=0)
    for field in ("qty", "entry_price", "exit_price", "fee", "pnl"):
        assert isinstance(first[field], str)
        assert Decimal(first[field]) == getattr(stored, field)
        assert first[field] == decimal_text(getattr(stored, field))
    assert (first["entry_time"], first["exit_time"]) == (stored.entry_time, stored.exit_time)
    assert first["return"] == stored.return_rate


def test_trades_page_in_seq_order_within_the_limits(auth_client, run):
    backtest_id = run()
    url = f"{BACKTESTS}/{backtest_id}/trades"
    everything = auth_client.get(url, {"page_size": 1000}).json()["results"]
    assert len(everything) > 10
    # the default page is 100 trades
    default = auth_client.get(url).json()
    assert len(default["results"]) == min(100, len(everything))
    # pages of 7, followed through next, give every trade once, in order
    seen: list[dict[str, Any]] = []
    page = auth_client.get(url, {"page_size": 7}).json()
    assert page["previous"] is None
    while True:
        assert page["count"] == len(everything)
        assert len(page["results"]) <= 7
        seen.extend(page["results"])
        if page["next"] is None:
            break
        page = auth_client.get(page["next"]).json()
        assert page["previous"] is not None
    assert seen == everything
    # past the last page: empty, no next
    beyond = auth_client.get(url, {"page_size": 7, "page": 10_000}).json()
    assert beyond["results"] == []
    assert beyond["next"] is None


@pytest.mark.parametrize(
    "query",
    [{"page_size": 1001}, {"page_size": 0}, {"page": 0}, {"page": "two"}, {"side": "up"},
     {"exit_reason": "bored"}],
)  # fmt: skip
def test_bad_trade_queries_are_a_400(auth_client, run, query):
    backtest_id = run()
    response = auth_client.get(f"{BACKTESTS}/{backtest_id}/trades", query)
    assert error_of(response, 400)["code"] == "validation_error"
    assert set(error_of(response)["details"]) == set(query)


def test_the_equity_curve_is_thinned_and_ends_at_the_final_equity(auth_client, run, settings):
    settings.BACKTEST_EQUITY_POINTS = 50
    backtest_id = run()
    detail = auth_client.get(f"{BACKTESTS}/{backtest_id}").json()
    response = auth_client.get(f"{BACKTESTS}/{backtest_id}/equity")
    assert response.status_code == 200
    curve = response.json()
    assert isinstance(curve, list)
    assert 2 <= len(curve) <= 50
    assert all(len(point) == 2 for point in curve)
    times = [point[0] for point in curve]
    assert times == sorted(set(times))
    assert curve[-1][1] == detail["metrics"]["final_equity"]
    assert curve[0][0] >= int(Backtest.objects.get(pk=backtest_id).start_ms)


def test_the_default_equity_curve_stays_within_the_setting(auth_client, run, sample_candles):
    backtest_id = run()
    curve = auth_client.get(f"{BACKTESTS}/{backtest_id}/equity").json()
    assert sample_candles.count > django_settings.BACKTEST_EQUITY_POINTS  # so it was thinned
    assert len(curve) <= django_settings.BACKTEST_EQUITY_POINTS


def test_a_queued_backtest_has_no_trades_and_no_equity_yet(auth_client, create):
    backtest_id = create().json()["id"]
    assert auth_client.get(f"{BACKTESTS}/{backtest_id}/equity").json() == []
    trades = auth_client.get(f"{BACKTESTS}/{backtest_id}/trades").json()
    assert trades == {"count": 0, "next": None, "previous": None, "results": []}


# --- list ----------------------------------------------------------------------------------------


def test_the_list_is_newest_first_without_equity(auth_client, create, run):
    first = create().json()["id"]
    second = run()
    third = create(strategy="rsi_reversion", params={}).json()["id"]
    response = auth_client.get(BACKTESTS)
    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 3
    assert page["next"] is None
    assert page["previous"] is None
    assert [item["id"] for item in page["results"]] == [third, second, first]
    assert all(set(item) == DETAIL_FIELDS for item in page["results"])
    assert page["results"][1]["metrics"]["final_equity"] > 0


def test_the_list_filters_by_status_and_strategy(auth_client, create, run):
    queued = create().json()["id"]
    done = run()
    rsi = create(strategy="rsi_reversion", params={}).json()["id"]

    def ids(**query: Any) -> list[int]:
        response = auth_client.get(BACKTESTS, query)
        assert response.status_code == 200
        return [item["id"] for item in response.json()["results"]]

    assert ids(status="done") == [done]
    assert ids(status="queued") == [rsi, queued]
    assert ids(strategy="ma_cross") == [done, queued]
    assert ids(strategy="ma_cross", status="queued") == [queued]
    assert ids(status="failed") == []


def test_the_list_pages_within_the_limits(auth_client, create, settings):
    settings.BACKTEST_MAX_ACTIVE_PER_USER = 30
    created = [create().json()["id"] for _ in range(25)]
    newest_first = created[::-1]
    page1 = auth_client.get(BACKTESTS).json()  # default page size 20
    assert page1["count"] == 25
    assert [item["id"] for item in page1["results"]] == newest_first[:20]
    assert page1["previous"] is None
    assert "page=2" in page1["next"]
    page2 = auth_client.get(page1["next"]).json()
    assert [item["id"] for item in page2["results"]] == newest_first[20:]
    assert page2["next"] is None
    assert auth_client.get(page2["previous"]).json() == page1
    small = auth_client.get(BACKTESTS, {"page_size": 10, "page": 3}).json()
    assert [item["id"] for item in small["results"]] == newest_first[20:]
    assert "page_size=10" in small["previous"]
    assert len(auth_client.get(BACKTESTS, {"page_size": 100}).json()["results"]) == 25
    # a last page that is exactly full has no next
    assert auth_client.get(BACKTESTS, {"page_size": 5, "page": 5}).json()["next"] is None
    assert auth_client.get(BACKTESTS, {"page_size": 25}).json()["next"] is None
    for bad in ({"page_size": 101}, {"page_size": 0}, {"page": -1}, {"page": 10**30},
                {"status": "asleep"}, {"schedule": "nightly"}):  # fmt: skip
        response = auth_client.get(BACKTESTS, bad)
        assert response.status_code == 400, bad
        assert set(error_of(response)["details"]) == set(bad)


def test_the_list_shows_only_the_users_backtests(auth_client, create, sample_candles):
    mine = create().json()["id"]
    theirs(sample_candles)
    assert [item["id"] for item in auth_client.get(BACKTESTS).json()["results"]] == [mine]


# --- cancel, re-run, delete ----------------------------------------------------------------------


def test_cancel_of_a_queued_backtest_cancels_it(auth_client, create):
    backtest_id = create().json()["id"]
    response = auth_client.post(f"{BACKTESTS}/{backtest_id}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["finished_at"] is not None
    assert Backtest.objects.get(pk=backtest_id).status == RunStatus.CANCELLED
    # a worker that gets the message later does not run it
    assert services.backtest_execute(backtest_id=backtest_id) == RunStatus.CANCELLED
    # cancelling again: it is no longer active
    again = auth_client.post(f"{BACKTESTS}/{backtest_id}/cancel")
    assert error_of(again, 409)["code"] == "not_active"


def test_cancel_of_a_finished_backtest_is_a_409_and_changes_nothing(auth_client, run):
    backtest_id = run()
    response = auth_client.post(f"{BACKTESTS}/{backtest_id}/cancel")
    error = error_of(response, 409)
    assert error["code"] == "not_active"
    assert error["details"] == {"status": ["done"]}
    backtest = Backtest.objects.get(pk=backtest_id)
    assert backtest.status == RunStatus.DONE
    assert backtest.trade_count > 0


def test_rerun_creates_a_new_queued_backtest_of_the_same_configuration(auth_client, run):
    original_id = run(stop_loss="0.03", initial_cash="500")
    original = auth_client.get(f"{BACKTESTS}/{original_id}").json()
    response = auth_client.post(f"{BACKTESTS}/{original_id}/rerun")
    assert response.status_code == 201
    again = response.json()
    assert again["id"] != original_id
    assert again["status"] == "queued"
    assert again["metrics"] is None
    same = ("strategy", "params", "exchange", "symbol", "timeframe", "start", "end",
            "initial_cash", "fee_rate", "slippage_bps", "position_size", "stop_loss",
            "take_profit", "candle_count")  # fmt: skip
    assert {f: again[f] for f in same} == {f: original[f] for f in same}
    assert Backtest.objects.count() == 2


def test_rerun_is_checked_as_a_new_backtest(auth_client, create, settings):
    backtest_id = create().json()["id"]
    StrategyRow.objects.filter(key="ma_cross").update(enabled=False)
    response = auth_client.post(f"{BACKTESTS}/{backtest_id}/rerun")
    assert error_of(response, 400)["code"] == "strategy_disabled"
    assert Backtest.objects.count() == 1


def test_delete_removes_the_backtest_and_its_trades(auth_client, run):
    backtest_id = run()
    assert BacktestTrade.objects.filter(backtest_id=backtest_id).exists()
    response = auth_client.delete(f"{BACKTESTS}/{backtest_id}")
    assert response.status_code == 204
    assert not Backtest.objects.filter(pk=backtest_id).exists()
    assert not BacktestTrade.objects.exists()
    assert auth_client.get(f"{BACKTESTS}/{backtest_id}").status_code == 404


# --- another user's backtest, and no credentials -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("delete", ""), ("get", "/trades"), ("get", "/equity"), ("post", "/cancel"),
     ("post", "/rerun")],
)  # fmt: skip
def test_another_users_backtest_is_a_404_everywhere(auth_client, sample_candles, method, suffix):
    backtest = theirs(sample_candles)
    before = Backtest.objects.count()
    response = getattr(auth_client, method)(f"{BACKTESTS}/{backtest.pk}{suffix}")
    assert error_of(response, 404)["code"] == "not_found"
    assert Backtest.objects.count() == before
    assert Backtest.objects.get(pk=backtest.pk).status == RunStatus.DONE


def test_another_users_queued_backtest_cannot_be_cancelled(auth_client, sample_candles, user):
    other = UserFactory()
    backtest = Backtest.objects.create(
        user=other,
        strategy_id="ma_cross",
        params=MA_CROSS,
        exchange="bitget",
        symbol="BTC/USDT",
        timeframe="5m",
        start=sample_candles.start,
        end=sample_candles.end,
        initial_cash=Decimal(1),
        fee_rate=Decimal(0),
    )
    assert auth_client.post(f"{BACKTESTS}/{backtest.pk}/cancel").status_code == 404
    assert Backtest.objects.get(pk=backtest.pk).status == RunStatus.QUEUED


ENDPOINTS = [
    ("get", BACKTESTS), ("post", BACKTESTS), ("get", f"{BACKTESTS}/1"),
    ("delete", f"{BACKTESTS}/1"), ("get", f"{BACKTESTS}/1/trades"),
    ("get", f"{BACKTESTS}/1/equity"), ("post", f"{BACKTESTS}/1/cancel"),
    ("post", f"{BACKTESTS}/1/rerun"), ("get", SWEEPS), ("post", SWEEPS), ("get", f"{SWEEPS}/1"),
    ("delete", f"{SWEEPS}/1"), ("post", f"{SWEEPS}/1/cancel"), ("get", SCHEDULES),
    ("post", SCHEDULES), ("get", f"{SCHEDULES}/1"), ("patch", f"{SCHEDULES}/1"),
    ("delete", f"{SCHEDULES}/1"), ("post", f"{SCHEDULES}/1/run"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_every_endpoint_needs_credentials(api_client, user, method, url):
    response = getattr(api_client, method)(url, {}, format="json")
    assert error_of(response, 401)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"]


def test_metrics_are_json_numbers_or_null(auth_client, run):
    metrics = auth_client.get(f"{BACKTESTS}/{run()}").json()["metrics"]
    for key, value in metrics.items():
        assert value is None or (isinstance(value, int | float) and math.isfinite(value)), key
