"""Storing candles: idempotent imports, resampled timeframes, the sample, exchange fetches.

The exchange is the real ccxt Bitget client behind ``CcxtExchange``; only its HTTP transport is
replaced, by ``BitgetKlines``, which answers Bitget's kline endpoints from the shipped sample.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from markets.candle_csv import CandleRow, read_candles
from markets.candles import (
    CandleConflictError,
    CandleDataError,
    ImportResult,
    candles_fetch_from_exchange,
    candles_import,
    candles_load_sample,
    candles_store_resampled,
)
from markets.events import candles_group
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.errors import ExchangeError
from markets.models import Candle
from tests.backtests.worker_helpers import group_listener  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "markets" / "data" / "btc_usdt_5m.csv.gz"
KEY: dict[str, Any] = {"exchange": "bitget", "symbol": "BTC/USDT"}
MIN = 60_000
STEP = 5 * MIN
HOUR = 60 * MIN
T0 = 1_672_531_200_000  # 2023-01-01 00:00 UTC


def sample_rows() -> list[list[str]]:
    """The sample as plain strings: timestamp, open, high, low, close, volume."""
    with gzip.open(SAMPLE, "rt", newline="") as stream:
        return list(csv.reader(stream))[1:]


def steady(start: int, count: int, step: int = STEP) -> list[CandleRow]:
    """Candle i: open 100 + i, high 102 + i, low 99 + i, close 101 + i, volume 1."""
    return [
        CandleRow(
            start + i * step,
            open=Decimal(100 + i),
            high=Decimal(102 + i),
            low=Decimal(99 + i),
            close=Decimal(101 + i),
            volume=Decimal(1),
        )
        for i in range(count)
    ]


def stored(timeframe: str) -> list[tuple[Any, ...]]:
    return list(
        Candle.objects.filter(**KEY, timeframe=timeframe)
        .order_by("open_time")
        .values_list("open_time", "open", "high", "low", "close", "volume")
    )


# -- imports ------------------------------------------------------------------------------------


def test_it_imports_candles_and_a_second_import_changes_nothing(db: Any) -> None:
    # given
    rows = steady(T0, 6)

    # when
    first = candles_import(**KEY, timeframe="5m", rows=rows)
    second = candles_import(**KEY, timeframe="5m", rows=rows)

    # then
    assert (first.created, first.unchanged) == (6, 0)
    assert (second.created, second.unchanged) == (0, 6)
    assert stored("5m")[5] == (T0 + 5 * STEP, 105, 107, 104, 106, 1)
    assert Candle.objects.count() == 6


def test_it_adds_only_the_new_candles_of_an_overlapping_import(db: Any) -> None:
    # given candles 0-3 stored
    candles_import(**KEY, timeframe="5m", rows=steady(T0, 4))

    # when candles 2-7 arrive
    result = candles_import(**KEY, timeframe="5m", rows=steady(T0, 8)[2:])

    # then
    assert (result.created, result.unchanged) == (4, 2)
    assert [row[0] for row in stored("5m")] == [T0 + i * STEP for i in range(8)]


def test_it_refuses_a_conflicting_candle_naming_the_row_and_writes_nothing(db: Any) -> None:
    # given candles 0-3 stored, then a batch of 0-5 whose third row has another close
    candles_import(**KEY, timeframe="5m", rows=steady(T0, 4))
    batch = steady(T0, 6)
    batch[2] = batch[2]._replace(close=Decimal("102.5"))

    # when
    with pytest.raises(CandleConflictError) as caught:
        candles_import(**KEY, timeframe="5m", rows=batch)

    # then the error names row 3, its time and the difference; rows 4 and 5 were not added
    assert str(caught.value) == (
        "row 3: candle 2023-01-01 00:10 UTC conflicts with the stored bitget BTC/USDT 5m "
        "candle: close 102.5 given, 103 stored"
    )
    assert caught.value.details["row"] == 3
    assert caught.value.status == 409
    assert len(stored("5m")) == 4
    assert stored("5m")[2][4] == 103


def test_it_refuses_an_inconsistent_candle_and_writes_nothing(db: Any) -> None:
    # given a batch whose second row has a high below its close
    batch = steady(T0, 3)
    batch[1] = batch[1]._replace(high=Decimal("101"))

    # when
    with pytest.raises(CandleDataError, match=r"row 2: candle 2023-01-01 00:05 UTC: high 101"):
        candles_import(**KEY, timeframe="5m", rows=batch)

    # then
    assert Candle.objects.count() == 0


def test_it_refuses_one_open_time_twice_with_different_values(db: Any) -> None:
    # given
    batch = [*steady(T0, 2), steady(T0, 2)[1]._replace(volume=Decimal(5))]

    # when
    with pytest.raises(CandleDataError, match=r"row 3: .* repeats the open time of row 2"):
        candles_import(**KEY, timeframe="5m", rows=batch)

    # then
    assert Candle.objects.count() == 0


def test_it_keeps_candles_apart_by_exchange_symbol_and_timeframe(db: Any) -> None:
    # given the same rows for BTC/USDT 5m
    candles_import(**KEY, timeframe="5m", rows=steady(T0, 3))

    # when they are imported as ETH/USDT and as 1h (hourly open times), with other prices
    eth = candles_import(
        exchange="bitget", symbol="ETH/USDT", timeframe="5m", rows=steady(T0, 3)[:1]
    )
    hourly = candles_import(**KEY, timeframe="1h", rows=steady(T0, 2, HOUR))

    # then nothing conflicts: each key is its own series
    assert (eth.created, hourly.created) == (1, 2)
    assert Candle.objects.count() == 6


def test_it_treats_a_value_with_many_digits_as_unchanged_on_reimport(db: Any) -> None:
    # given a volume with 19 significant digits (more than SQLite's float keeps)
    row = steady(T0, 1)[0]._replace(volume=Decimal("1234567.123456789012"))
    candles_import(**KEY, timeframe="5m", rows=[row])

    # when
    again = candles_import(**KEY, timeframe="5m", rows=[row])

    # then
    assert (again.created, again.unchanged) == (0, 1)


def test_it_imports_the_sample_in_a_handful_of_queries(
    db: Any, django_assert_max_num_queries: Any
) -> None:
    # given the 10,999 sample candles
    rows = read_candles(SAMPLE, timeframe="5m")

    # when: one range read, then batched inserts (SQLite caps a batch at 999 parameters)
    with django_assert_max_num_queries(150):
        result = candles_import(**KEY, timeframe="5m", rows=rows)
    with django_assert_max_num_queries(5):
        again = candles_import(**KEY, timeframe="5m", rows=rows)

    # then
    assert (result.created, again.unchanged) == (10_999, 10_999)


# -- resampled timeframes -----------------------------------------------------------------------


def test_it_stores_complete_resampled_candles_and_an_hour_once_it_completes(db: Any) -> None:
    # given 00:00-01:25 in 5m without 01:20 (a complete hour, then 5 of the next 12 candles)
    rows = steady(T0, 18)
    del rows[16]
    candles_import(**KEY, timeframe="5m", rows=rows)

    # when
    first = candles_store_resampled(**KEY, source="5m", targets=["15m", "1h"])

    # then 00:00-01:00 quarters and 01:00-01:15, but not 01:15 (missing 01:20); one hour
    assert (first["15m"].created, first["1h"].created) == (5, 1)
    assert stored("1h") == [(T0, 100, 113, 99, 112, 12)]
    assert stored("15m")[4] == (T0 + 4 * 15 * MIN, 112, 116, 111, 115, 3)

    # and when the rest of the second hour arrives, only the new buckets are created
    candles_import(**KEY, timeframe="5m", rows=steady(T0, 24))
    second = candles_store_resampled(**KEY, source="5m", targets=["15m", "1h"])
    assert (second["15m"].created, second["15m"].unchanged) == (3, 5)
    assert (second["1h"].created, second["1h"].unchanged) == (1, 1)
    assert stored("1h")[1] == (T0 + HOUR, 112, 125, 111, 124, 12)


def test_it_refuses_a_resampled_candle_that_contradicts_a_stored_one(db: Any) -> None:
    # given an hour of 5m candles, and a stored 1h candle for it with another volume
    candles_import(**KEY, timeframe="5m", rows=steady(T0, 12))
    candles_import(
        **KEY, timeframe="1h", rows=[CandleRow(T0, *map(Decimal, (100, 113, 99, 112, 11)))]
    )

    # when
    with pytest.raises(
        CandleConflictError, match=r"5m resampled into 1h: .* volume 12 given, 11 stored"
    ):
        candles_store_resampled(**KEY, source="5m", targets=["15m", "1h"])

    # then the 15m candles of the same call were not kept either
    assert stored("15m") == []


def test_it_refuses_to_resample_into_a_smaller_timeframe(db: Any) -> None:
    with pytest.raises(CandleDataError, match="cannot resample 1h into 15m"):
        candles_store_resampled(**KEY, source="1h", targets=["15m"])


def test_it_loads_the_sample_and_its_resamples_once(db: Any) -> None:
    # given the complete buckets of the sample, counted here with plain Python
    times = [int(row[0]) for row in sample_rows()]
    expected = {"5m": len(times)}
    for timeframe, minutes in (("15m", 15), ("1h", 60), ("4h", 240), ("1d", 1440)):
        buckets = Counter(t - t % (minutes * MIN) for t in times)
        expected[timeframe] = sum(1 for n in buckets.values() if n == minutes // 5)

    # when
    first = candles_load_sample()
    second = candles_load_sample()

    # then
    assert expected == {"5m": 10_999, "15m": 3_666, "1h": 916, "4h": 228, "1d": 37}
    assert {tf: result.created for tf, result in first.results.items()} == expected
    assert {tf: result.unchanged for tf, result in second.results.items()} == expected
    assert (first.created, second.created, second.total) == (15_846, 0, 15_846)
    for timeframe, count in expected.items():
        assert Candle.objects.filter(**KEY, timeframe=timeframe).count() == count
    # the first day, 2023-01-03 00:00 UTC (the 2nd began at 16:45), from the 288 5m candles
    day = stored("1d")[0]
    assert day[0] == 1_672_704_000_000
    assert day[1:] == (
        Decimal("16665.9"),
        Decimal("16774.0"),
        Decimal("16600.3"),
        Decimal("16667.2"),
        Decimal("203070.205"),
    )


# -- fetching from the exchange -------------------------------------------------------------------


class BitgetKlines(BaseAdapter):
    """Bitget's spot kline endpoints (v2), answered from the sample as of ``now_ms``.

    Like Bitget, it returns the newest ``limit`` candles of [startTime, endTime), ascending,
    as strings ``[ts, open, high, low, close, baseVol, quoteVol, usdtVol]``; the candle that
    contains ``now_ms`` is served too (it is still open). Request number ``fail_on`` (1-based)
    fails with a connection reset.
    """

    def __init__(self, now_ms: int, *, fail_on: int | None = None) -> None:
        super().__init__()
        self.candles = [row for row in sample_rows() if int(row[0]) <= now_ms]
        self.now_ms = now_ms
        self.fail_on = fail_on
        self.requests: list[dict[str, str]] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        url = urlsplit(str(request.url))
        params = dict(parse_qsl(url.query))
        self.requests.append({"path": url.path, **params})
        if len(self.requests) == self.fail_on:
            raise requests.ConnectionError("connection reset by peer")
        assert url.path in ("/api/v2/spot/market/history-candles", "/api/v2/spot/market/candles")
        assert (params["symbol"], params["granularity"]) == ("BTCUSDT", "5min")
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", self.now_ms + 1))
        served = [row for row in self.candles if start <= int(row[0]) < end]
        served = served[-int(params.get("limit", 100)) :]
        data = [
            [ts, o, h, low, c, vol, str(Decimal(vol) * Decimal(c)), str(Decimal(vol) * Decimal(c))]
            for ts, o, h, low, c, vol in served
        ]
        body = {"code": "00000", "msg": "success", "requestTime": str(self.now_ms), "data": data}
        response = requests.Response()
        response.status_code = 200
        response.reason = "OK"
        response._content = json.dumps(body).encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass

    def start_times(self) -> list[int]:
        return [int(request["startTime"]) for request in self.requests]


def bitget(transport: BitgetKlines) -> CcxtExchange:
    exchange = CcxtExchange.public("bitget")
    exchange.client.session.mount("https://", transport)
    return exchange


# The last 1,000 sample candles; "now" is 2 minutes into the last one, which is still open.
ROWS = sample_rows()
SINCE = int(ROWS[-1000][0])  # 2023-02-06 10:00 UTC
NOW = int(ROWS[-1][0]) + 2 * MIN


def fetch_btc_5m(transport: BitgetKlines, *, since_ms: int = SINCE, **options: Any) -> ImportResult:
    """Bitget's BTC/USDT 5m candles from ``since_ms`` on, through ``transport``, at ``NOW``."""
    return candles_fetch_from_exchange(
        exchange=bitget(transport), symbol="BTC/USDT", timeframe="5m", since_ms=since_ms,
        now_ms=NOW, **options,
    )  # fmt: skip


def test_it_fetches_every_closed_candle_page_by_page(db: Any) -> None:
    # given
    transport = BitgetKlines(NOW)
    progress: list[tuple[int, int]] = []

    # when
    result = fetch_btc_5m(
        transport, page_limit=200, progress=lambda done, total: progress.append((done, total))
    )

    # then 999 candles in 5 pages of 200 (the 1,000th is still open), equal to the sample
    assert (result.created, result.unchanged) == (999, 0)
    assert transport.start_times() == [SINCE + page * 200 * STEP for page in range(5)]
    assert {r["path"] for r in transport.requests} == {"/api/v2/spot/market/history-candles"}
    expected = [(int(r[0]), *(Decimal(v) for v in r[1:])) for r in ROWS[-1000:-1]]
    assert stored("5m") == expected
    assert not Candle.objects.filter(open_time=int(ROWS[-1][0])).exists()
    assert progress[0] == (0, 999)
    assert progress[-1] == (999, 999)


def test_it_resumes_an_interrupted_fetch_without_fetching_stored_pages_again(db: Any) -> None:
    # given a fetch whose third request fails
    failing = BitgetKlines(NOW, fail_on=3)
    with pytest.raises(ExchangeError) as caught:
        fetch_btc_5m(failing)
    assert caught.value.transient
    assert len(stored("5m")) == 400  # pages 1 and 2 are kept

    # when the same fetch runs again
    transport = BitgetKlines(NOW)
    result = fetch_btc_5m(transport)

    # then it starts at the first missing candle and completes the range
    assert transport.start_times() == [SINCE + page * 200 * STEP for page in range(2, 5)]
    assert (result.created, result.unchanged) == (599, 0)
    assert len(stored("5m")) == 999


def test_it_fetches_up_to_until_only(db: Any) -> None:
    # given
    transport = BitgetKlines(NOW)

    # when: 300 candles wanted, pages of 200
    result = fetch_btc_5m(transport, until_ms=SINCE + 300 * STEP)

    # then the second page's candles after `until` are not stored
    assert result.created == 300
    assert stored("5m")[-1][0] == SINCE + 299 * STEP
    assert len(transport.requests) == 2


def test_it_stops_when_a_page_brings_nothing(db: Any) -> None:
    # given a range that starts a week before the exchange has any candle
    transport = BitgetKlines(NOW)

    # when
    result = fetch_btc_5m(transport, since_ms=int(ROWS[0][0]) - 7 * 24 * HOUR)

    # then one empty page, nothing stored
    assert result.created == 0
    assert len(transport.requests) == 1
    assert Candle.objects.count() == 0


def test_it_does_not_ask_when_every_candle_of_the_range_is_stored(db: Any) -> None:
    # given the 300 candles of the range already stored
    rows = [CandleRow(int(r[0]), *(Decimal(v) for v in r[1:])) for r in ROWS[-1000:-700]]
    candles_import(**KEY, timeframe="5m", rows=rows)
    transport = BitgetKlines(NOW)

    # when
    result = fetch_btc_5m(transport, until_ms=SINCE + 300 * STEP)

    # then
    assert (result.created, result.unchanged) == (0, 0)
    assert transport.requests == []


def test_the_newest_closed_candle_is_announced_to_the_markets_subscribers_once(
    transactional_db: Any,
    group_listener: Any,  # noqa: F811
) -> None:
    # given: a listener on the market's group
    group_listener.join(candles_group("bitget", "BTC/USDT", "5m"))

    # when: a fetch stores up to the newest closed candle, then runs again (nothing new)
    for _ in range(2):
        fetch_btc_5m(BitgetKlines(NOW))

    # then: one candles.closed, for the newest closed candle only
    messages = group_listener.receive(seconds=1)
    assert [m["event"]["type"] for m in messages] == ["candles.closed"]
    event = messages[0]["event"]
    assert event["channel"] == "candles:bitget:BTC/USDT:5m"
    assert event["owner"] is None
    assert event["data"]["candle"] == [int(ROWS[-2][0]), *(float(v) for v in ROWS[-2][1:])]


def test_a_fetch_of_older_candles_announces_nothing(
    transactional_db: Any,
    group_listener: Any,  # noqa: F811
) -> None:
    group_listener.join(candles_group("bitget", "BTC/USDT", "5m"))
    fetch_btc_5m(BitgetKlines(NOW), until_ms=SINCE + 300 * STEP)
    assert group_listener.receive(seconds=1) == []
