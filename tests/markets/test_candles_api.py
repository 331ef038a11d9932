from __future__ import annotations

from decimal import Decimal

import pytest

from markets.models import Candle

URL = "/api/candles"
HOUR = 3_600_000
T0 = 1_672_678_800_000  # 2023-01-02 17:00 UTC


def store_hours(n, *, symbol="BTC/USDT", start=T0):
    Candle.objects.bulk_create(
        Candle(
            exchange="bitget", symbol=symbol, timeframe="1h", open_time=start + i * HOUR,
            open=Decimal(100 + i), high=Decimal(110 + i), low=Decimal(90 + i),
            close=Decimal("105.5") + i, volume=Decimal("2.25"),
        )
        for i in range(n)
    )  # fmt: skip


def query(**params):
    return {"exchange": "bitget", "symbol": "BTC/USDT", "timeframe": "1h", **params}


@pytest.mark.django_db
def test_it_gives_the_most_recent_closed_candles_ascending(auth_client):
    # given: 300 stored hours
    store_hours(300)
    # when
    response = auth_client.get(URL, query())
    # then: the newest 200, oldest first, in ccxt's row shape
    assert response.status_code == 200
    body = response.json()
    assert (body["exchange"], body["symbol"], body["timeframe"]) == ("bitget", "BTC/USDT", "1h")
    candles = body["candles"]
    assert len(candles) == 200
    assert candles[0] == [T0 + 100 * HOUR, 200.0, 210.0, 190.0, 205.5, 2.25]
    assert candles[-1][0] == T0 + 299 * HOUR
    assert [c[0] for c in candles] == sorted(c[0] for c in candles)


@pytest.mark.django_db
def test_it_pages_back_with_before(auth_client):
    store_hours(300)
    response = auth_client.get(URL, query(limit=50, before=T0 + 100 * HOUR))
    candles = response.json()["candles"]
    assert [c[0] for c in candles] == [T0 + i * HOUR for i in range(50, 100)]


@pytest.mark.django_db
def test_it_leaves_out_the_candle_still_open(auth_client):
    import time

    now_hour = int(time.time() * 1000) // HOUR * HOUR
    store_hours(3, start=now_hour - 2 * HOUR)  # two closed hours, then the current one
    candles = auth_client.get(URL, query()).json()["candles"]
    assert [c[0] for c in candles] == [now_hour - 2 * HOUR, now_hour - HOUR]


@pytest.mark.django_db
def test_it_serves_only_the_asked_market_and_timeframe(auth_client):
    store_hours(5)
    store_hours(5, symbol="ETH/USDT")
    assert len(auth_client.get(URL, query(symbol="ETH/USDT")).json()["candles"]) == 5
    assert auth_client.get(URL, query(timeframe="4h")).json()["candles"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"symbol": "NOPE/USDT"}, "symbol"),
        ({"timeframe": "7m"}, "timeframe"),
        ({"exchange": "binance"}, "exchange"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"before": -5}, "before"),
        ({"before": "yesterday"}, "before"),
    ],
)
def test_it_answers_bad_parameters_with_a_400_envelope(auth_client, params, field):
    response = auth_client.get(URL, query(**params))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in ("validation_error", "unknown_symbol")
    assert field in error["details"] or field in error["message"]


@pytest.mark.django_db
def test_an_unknown_symbol_is_named(auth_client):
    response = auth_client.get(URL, query(symbol="FOO/BAR"))
    assert response.status_code == 400
    assert "FOO/BAR" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_it_needs_a_login(api_client):
    assert api_client.get(URL, query()).status_code == 401
