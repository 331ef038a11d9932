"""``manage.py refresh_markets``, offline: Bitget's market endpoints are served from the shipped
snapshot's raw market data, through ccxt's real ``load_markets``; no request leaves the process.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from markets.exchanges import ccxt_swap
from markets.exchanges.markets import MarketCatalog, forget_catalogs, get_catalog, shipped_catalog
from markets.models import MarketSnapshot
from tests.conftest import ROOT, database_url
from tests.markets.ccxt_replay import (
    answer,
    bitget_markets_handler,
    block_network,
    raising,
    serve_everywhere,
)

pytestmark = pytest.mark.django_db

TIERS_PATH = "/api/v2/mix/market/query-position-lever"
MARKET_PATHS = {
    "/api/v2/spot/public/coins",
    "/api/v2/spot/public/symbols",
    "/api/v2/margin/currencies",
    "/api/v2/mix/market/contracts",
}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


@pytest.fixture(autouse=True)
def _fresh_catalogs() -> Iterator[None]:
    forget_catalogs()
    yield
    forget_catalogs()


def exchange_markets(**btc_usdt_info: str) -> dict[str, dict[str, Any]]:
    """The shipped markets, as the exchange would now list them (BTC/USDT's raw info changed)."""
    markets = copy.deepcopy(shipped_catalog("bitget").markets)
    markets["BTC/USDT"]["info"].update(btc_usdt_info)
    return markets


def run(*args: str) -> str:
    out = StringIO()
    call_command("refresh_markets", *args, stdout=out)
    return out.getvalue()


def test_it_stores_the_markets_the_exchange_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: Bitget now asks 2 USDT minimum on BTC/USDT; the process has the shipped catalog
    sent = serve_everywhere(monkeypatch, bitget_markets_handler(exchange_markets(minTradeUSDT="2")))
    assert get_catalog("bitget").rules("BTC/USDT").min_cost == Decimal(1)
    # when
    output = run()
    # then: one new snapshot with every market, ccxt-shaped
    snapshot = MarketSnapshot.objects.get()
    assert snapshot.exchange == "bitget"
    assert sorted(snapshot.markets) == shipped_catalog("bitget").symbols
    assert "Stored 15 bitget markets (7 spot, 8 swap)" in output
    assert {r.path_url.split("?")[0] for r in sent} == MARKET_PATHS | {TIERS_PATH}
    # with the tiers of the linear perps that have them (the others keep the default tier)
    assert "leverage tiers of 1 perps; no tiers for ADA/USDT:USDT, DOGE/USDT:USDT" in output
    btc = MarketCatalog("bitget", snapshot.markets).market("BTC/USDT:USDT")
    assert ccxt_swap.market_tiers(btc) == ccxt_swap.market_tiers(
        shipped_catalog("bitget").market("BTC/USDT:USDT")
    )
    # and the catalog reads it at once: the new minimum applies
    assert get_catalog("bitget").rules("BTC/USDT").min_cost == Decimal(2)


def test_it_reproduces_the_rules_ccxt_derives(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the exchange lists exactly the shipped markets
    serve_everywhere(monkeypatch, bitget_markets_handler(shipped_catalog("bitget").markets))
    # when
    run("--exchange", "bitget")
    # then: every market's precision, minimums, fees and margin modes come out the same
    stored = MarketCatalog("bitget", MarketSnapshot.objects.get().markets)
    shipped = shipped_catalog("bitget")
    for symbol in shipped.symbols:
        assert stored.rules(symbol) == shipped.rules(symbol), symbol
        assert stored.market(symbol)["marginModes"] == shipped.market(symbol)["marginModes"]


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (raising(requests.exceptions.ConnectionError("Connection refused")), "could not reach"),
        (raising(requests.exceptions.ReadTimeout("Read timed out")), "did not answer in time"),
        (answer(503, {"code": "40604", "msg": "Server is busy"}), "unavailable"),
    ],
    ids=["connection-refused", "timeout", "busy"],
)
def test_it_fails_clearly_and_stores_nothing_when_the_exchange_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, handler: Any, reason: str
) -> None:
    serve_everywhere(monkeypatch, handler)
    with pytest.raises(CommandError) as caught:
        run()
    assert str(caught.value).startswith("could not load the markets of bitget")
    assert reason in str(caught.value)
    assert "nothing was stored" in str(caught.value)
    assert MarketSnapshot.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.process
def test_it_exits_non_zero_without_a_traceback() -> None:
    # given: run from the shell, every HTTPS request sent through a proxy that refuses connections
    # (a closed local port): the exchange is unreachable and nothing leaves the machine
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "no_proxy": "",
    }
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "refresh_markets"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # then
    assert result.returncode == 1, result.stderr
    assert "CommandError: could not load the markets of bitget: could not reach bitget" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert "Stored" not in result.stdout
    assert MarketSnapshot.objects.count() == 0


def test_it_stores_nothing_when_the_exchange_lists_no_markets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve_everywhere(monkeypatch, bitget_markets_handler({}))
    with pytest.raises(CommandError, match="returned no markets"):
        run()
    assert MarketSnapshot.objects.count() == 0


def test_it_refuses_an_unsupported_exchange() -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        run("--exchange", "binance")
