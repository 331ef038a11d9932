"""Backtests of a perpetual swap through the API: leverage, shorts, funding and liquidation on
the shipped XRP/USDT:USDT sample (the issue's "what must hold"), and every perp parameter the
API refuses, with the envelope and nothing stored. The engine's own rules and its agreement with
reference computations are tested in ``test_engine_perp.py`` and ``test_perp_reference.py``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from backtests import services
from backtests.models import Backtest, RunStatus, Sweep
from tests.backtests.api_helpers import (
    BACKTESTS,
    MA_CROSS,
    SWEEPS,
    all_pages,
    backtest_body,
    error_of,
    post_unsent,
)
from tests.backtests.conftest import SampleMarket

pytestmark = pytest.mark.django_db
SHORTING = {**MA_CROSS, "allow_short": True}


@pytest.fixture
def run_perp(auth_client: Any, django_capture_on_commit_callbacks: Any, perp_candles: Any) -> Any:
    """Create a backtest of the perp sample through the API, run it in-process; its detail and
    trades as the API gives them."""

    def create_and_run(**overrides: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body = backtest_body(perp_candles, params=SHORTING, **overrides)
        response = post_unsent(auth_client, django_capture_on_commit_callbacks, BACKTESTS, body)
        assert response.status_code == 201, response.content
        backtest_id = response.json()["id"]
        assert services.backtest_execute(backtest_id=backtest_id) == RunStatus.DONE
        detail = auth_client.get(f"{BACKTESTS}/{backtest_id}").json()
        trades = all_pages(auth_client, f"{BACKTESTS}/{backtest_id}/trades", page_size=1000)
        return detail, trades

    return create_and_run


def test_a_leveraged_long_and_short_backtest_pays_and_receives_funding(run_perp: Any) -> None:
    # when: ma_cross with shorts, leverage 3, on the perp sample
    detail, trades = run_perp(leverage=3)
    # then: it is done, with funding on the trades held over a funding time
    assert detail["status"] == "done", detail["error"]
    assert (detail["leverage"], detail["margin_mode"]) == (3, "isolated")
    assert {trade["side"] for trade in trades} == {"long", "short"}
    assert {trade["leverage"] for trade in trades} == {3}
    funded = [trade for trade in trades if Decimal(trade["funding"]) != 0]
    assert funded, "no trade was open over a funding time"
    total = sum(Decimal(trade["funding"]) for trade in trades)
    assert detail["metrics"]["funding_fees"] != 0
    assert float(total) == pytest.approx(detail["metrics"]["funding_fees"], abs=1e-9)
    # a trade's pnl is net of its funding: the equity still adds up
    final = Decimal("10000") + sum(Decimal(trade["pnl"]) for trade in trades)
    assert float(final) == pytest.approx(detail["metrics"]["final_equity"], rel=1e-9)


def test_a_leverage_of_50_is_liquidated_on_the_sample(run_perp: Any) -> None:
    detail, trades = run_perp(leverage=50)
    liquidated = [trade for trade in trades if trade["exit_reason"] == "liquidation"]
    assert liquidated
    assert detail["metrics"]["liquidations"] == len(liquidated)
    for trade in liquidated:
        entry, exit_price = Decimal(trade["entry_price"]), Decimal(trade["exit_price"])
        # isolated, leverage 50: liquidated about 1/50 - 0.5 % from the entry, against it
        move = (exit_price - entry) / entry * (1 if trade["side"] == "long" else -1)
        assert Decimal("-0.02") < move < Decimal("-0.01")


def test_the_trades_can_be_filtered_to_the_liquidations(run_perp: Any, auth_client: Any) -> None:
    detail, trades = run_perp(leverage=50)
    url = f"{BACKTESTS}/{detail['id']}/trades"
    only = auth_client.get(url, {"exit_reason": "liquidation", "page_size": 1000}).json()
    assert only["results"] == [t for t in trades if t["exit_reason"] == "liquidation"]


def test_the_backtest_page_shows_leverage_funding_and_liquidations(
    run_perp: Any, trader_client: Any
) -> None:
    detail, _ = run_perp(leverage=50)
    response = trader_client.get(f"/backtests/{detail['id']}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "50×" in page
    assert "Funding received" in page
    assert 'data-metric="liquidations"' in page
    assert "Liquidation" in page


def test_trades_filter_by_side_and_exit_reason(run_perp: Any, auth_client: Any) -> None:
    # given: shorts and a tight stop loss, so there are both sides and several exits
    detail, everything = run_perp(stop_loss="0.004")
    url = f"{BACKTESTS}/{detail['id']}/trades"
    # when
    shorts = auth_client.get(url, {"side": "short", "page_size": 1000}).json()
    stopped = auth_client.get(url, {"exit_reason": "stop_loss", "page_size": 1000}).json()
    long_stops = auth_client.get(
        url, {"side": "long", "exit_reason": "stop_loss", "page_size": 1000}
    ).json()
    # then
    expected_shorts = [t for t in everything if t["side"] == "short"]
    expected_stops = [t for t in everything if t["exit_reason"] == "stop_loss"]
    assert expected_shorts
    assert expected_stops
    assert len(expected_shorts) < len(everything)
    assert shorts["results"] == expected_shorts
    assert shorts["count"] == len(expected_shorts)
    assert stopped["results"] == expected_stops
    assert long_stops["results"] == [t for t in expected_stops if t["side"] == "long"]


# --- refusals ------------------------------------------------------------------------------------


def _spot(market: SampleMarket) -> dict[str, Any]:
    return {**market.period(), "symbol": "BTC/USDT"}


REFUSED = [
    # (overrides, code, field)
    ({"leverage": 0}, "validation_error", "leverage"),
    ({"leverage": 126}, "validation_error", "leverage"),
    ({"leverage": "three"}, "validation_error", "leverage"),
    ({"leverage": 2.5}, "validation_error", "leverage"),
    ({"margin_mode": "hedge"}, "validation_error", "margin_mode"),
    ({"margin_mode": "cross"}, "unsupported_margin_mode", "margin_mode"),
    ({"symbol": "LTC/USDT:USDT", "leverage": 76}, "invalid_leverage", "leverage"),
    ({"symbol": "BTC/USDT", "leverage": 3}, "spot_market", "leverage"),
    ({"symbol": "BTC/USDT", "params": SHORTING}, "spot_market", "params.allow_short"),
]


@pytest.mark.parametrize(("overrides", "code", "field"), REFUSED)
def test_a_bad_perp_parameter_is_a_400_and_stores_nothing(
    auth_client: Any,
    django_capture_on_commit_callbacks: Any,
    perp_candles: Any,
    overrides: dict[str, Any],
    code: str,
    field: str,
) -> None:
    body = backtest_body(perp_candles, **overrides)
    response = post_unsent(auth_client, django_capture_on_commit_callbacks, BACKTESTS, body)
    error = error_of(response, 400)
    assert error["code"] == code
    assert field in error["details"]
    assert not Backtest.objects.exists()
    assert auth_client.get(BACKTESTS).status_code == 200  # still serving


def test_a_sweep_over_shorts_on_a_spot_market_is_a_400(
    auth_client: Any, django_capture_on_commit_callbacks: Any, perp_candles: Any
) -> None:
    body = {
        **backtest_body(perp_candles, symbol="BTC/USDT", params={"ma": "sma"}),
        "grid": {"fast": [5, 10], "slow": [30], "allow_short": [False, True]},
        "rank_by": "total_return",
    }
    response = post_unsent(auth_client, django_capture_on_commit_callbacks, SWEEPS, body)
    assert error_of(response, 400)["code"] == "spot_market"
    assert not Sweep.objects.exists()
