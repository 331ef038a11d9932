"""A market outside the exchange's catalog whose candles were imported from a file (the issue's
``ETH/BTC``): charts and backtests take it, a bot refuses it by name (no rules to trade by)."""

from __future__ import annotations

from typing import Any

import pytest

from backtests import services as backtest_services
from backtests.models import RunStatus
from bots.models import Bot
from markets.candle_csv import read_candle_file
from markets.candles import SAMPLE_PATH, candles_import
from markets.selectors import is_data_only, market_places
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import paper_account

pytestmark = pytest.mark.django_db
SYMBOL = "ETH/BTC"


@pytest.fixture
def eth_btc() -> list[Any]:
    """600 real 5m candles stored as bitget ETH/BTC, prices scaled to ETH/BTC's size."""
    rows = read_candle_file(SAMPLE_PATH, timeframe="5m").rows[:600]
    scaled = [
        row._replace(
            **{name: getattr(row, name) / 250_000 for name in ("open", "high", "low", "close")}
        )
        for row in rows
    ]
    candles_import(exchange="bitget", symbol=SYMBOL, timeframe="5m", rows=scaled)
    return scaled


def test_it_is_data_only_and_shown_with_its_stored_precision(eth_btc: list[Any]) -> None:
    assert is_data_only(exchange="bitget", symbol=SYMBOL)
    assert not is_data_only(exchange="bitget", symbol="BTC/USDT")
    assert not is_data_only(exchange="bitget", symbol="DOGE/EUR")  # nothing stored
    assert market_places(exchange="bitget", symbol=SYMBOL).price > 2


def test_its_candles_are_served(auth_client: Any, eth_btc: list[Any]) -> None:
    response = auth_client.get(
        "/api/candles", {"exchange": "bitget", "symbol": SYMBOL, "timeframe": "5m"}
    )
    assert response.status_code == 200, response.content
    assert len(response.json()) > 0


def test_it_can_be_backtested(
    auth_client: Any, eth_btc: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    strategy_catalogue_sync()
    body = {
        "strategy": "ma_cross", "params": {"fast": 5, "slow": 20}, "exchange": "bitget",
        "symbol": SYMBOL, "timeframe": "5m", "start": "2000-01-01T00:00:00Z",
        "end": "2100-01-01T00:00:00Z", "initial_cash": "1", "fee_rate": "0.001",
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        response = auth_client.post("/api/backtests", body, format="json")
    assert response.status_code == 201, response.content
    backtest_id = response.json()["id"]
    assert backtest_services.backtest_execute(backtest_id=backtest_id) == RunStatus.DONE
    detail = auth_client.get(f"/api/backtests/{backtest_id}").json()
    assert detail["candle_count"] == len(eth_btc)
    assert detail["trade_count"] > 0


def test_a_bot_refuses_it_by_name(auth_client: Any, user: Any, eth_btc: list[Any]) -> None:
    strategy_catalogue_sync()
    body = {
        "name": "On data", "exchange_account": paper_account(user).pk, "symbol": SYMBOL,
        "timeframe": "5m", "strategy": "ma_cross", "params": {"fast": 5, "slow": 20},
        "data_source": {"kind": "live"}, "order_size": {"fraction": 1},
    }  # fmt: skip
    response = auth_client.post("/api/bots", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "data-only market" in error["details"]["symbol"][0]
    assert not Bot.objects.exists()
