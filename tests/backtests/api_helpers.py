"""Requests and checks shared by the API tests of backtests, sweeps and schedules.

Creating requests run inside ``django_capture_on_commit_callbacks(execute=False)``: the runs are
stored but nothing is sent to a broker; the tests then run them in-process with the services.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.backtests.conftest import SampleMarket

BACKTESTS = "/api/backtests"
SWEEPS = "/api/sweeps"
SCHEDULES = "/api/backtest-schedules"
MA_CROSS = {"fast": 10, "slow": 30, "ma": "sma"}
ACCOUNT = {"initial_cash": "10000", "fee_rate": "0.001", "slippage_bps": 0, "position_size": 1}


def backtest_body(market: SampleMarket, **overrides: Any) -> dict[str, Any]:
    return {"strategy": "ma_cross", "params": MA_CROSS, **market.period(), **ACCOUNT, **overrides}


def post_unsent(client: Any, capture: Any, url: str, body: Any = None) -> Any:
    """POST ``body`` as JSON; on-commit callbacks (the broker sends) are captured, never run."""
    with capture(execute=False):
        return client.post(url, body, format="json")


def error_of(response: Any, status: int | None = None) -> dict[str, Any]:
    """The error of an envelope response; with ``status``, answered with that status."""
    if status is not None:
        assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


def all_pages(client: Any, url: str, **query: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list, following ``next`` links."""
    items: list[dict[str, Any]] = []
    response = client.get(url, query)
    while True:
        assert response.status_code == 200, response.content
        page = response.json()
        items.extend(page["results"])
        if page["next"] is None:
            return items
        response = client.get(page["next"])


def decimal_text(value: Any) -> str:
    """How the API writes a decimal: no exponent, no trailing zeros."""
    return format(Decimal(str(value)).normalize(), "f")
