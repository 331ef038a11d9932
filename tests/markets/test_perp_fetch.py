"""Fetching a perp's mark candles and funding history (``markets.perp_fetch`` and
``import_perp_data --since``), offline: ccxt's real Bitget code builds the requests and parses
the answers; only the HTTP is replaced, by ``BitgetPerp``, which answers Bitget's v2 swap
endpoints from the shipped XRP/USDT:USDT sample (``markets/data/perp``).
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from django.core.management import CommandError, call_command
from requests.adapters import BaseAdapter

from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.errors import ExchangeError
from markets.models import FundingRate, MarkCandle
from markets.perp_data import (
    PERP_DATA_DIR,
    PerpDataError,
    funding_rates_import,
    mark_candles_import,
    read_funding_file,
    read_mark_file,
)
from markets.perp_fetch import funding_rates_fetch_from_exchange, mark_candles_fetch_from_exchange
from markets.selectors import market_steps
from tests.markets.ccxt_replay import json_response
from tests.markets.test_import_candles_command import FakeTTY

SYMBOL = "XRP/USDT:USDT"
KEY: dict[str, Any] = {"exchange": "bitget", "symbol": SYMBOL}
MIN = 60_000
HOUR = 60 * MIN
EIGHT_HOURS = 8 * HOUR
MARK_FILE = PERP_DATA_DIR / "XRP_USDT_USDT-1h-mark.csv"
FUNDING_FILE = PERP_DATA_DIR / "XRP_USDT_USDT-8h-funding_rate.csv"
MARK_PATHS = ("/api/v2/mix/market/history-mark-candles", "/api/v2/mix/market/candles")
FUNDING_PATH = "/api/v2/mix/market/history-fund-rate"


def sample(path: Any) -> list[list[str]]:
    with path.open(newline="") as stream:
        return list(csv.reader(stream))[1:]


MARKS = sample(MARK_FILE)  # 100 1h mark candles, volume empty
FUNDING = sample(FUNDING_FILE)  # 91 rates stamped 0-19 ms after the 8h boundary
T0 = int(MARKS[0][0])  # 2021-11-15 06:00 UTC
MARK_NOW = int(MARKS[-1][0]) + 2 * MIN  # the last mark candle is still open
FUNDING_NOW = int(FUNDING[-1][0]) + HOUR


class BitgetPerp(BaseAdapter):
    """Bitget's v2 swap endpoints for XRPUSDT, answered from the sample as of ``now_ms``.

    Mark candles: like Bitget, the newest ``limit`` candles of [startTime, endTime), ascending,
    as strings ``[ts, open, high, low, close, baseVol, quoteVol]`` (mark candles trade nothing:
    volumes "0"); the candle that contains ``now_ms`` is served too. Funding history: pages of
    ``pageSize`` by ``pageNo``, newest first, shaped as the recorded ``fetchFundingRateHistory``
    answer. Request number ``fail_on`` (1-based) fails with a connection reset.
    """

    def __init__(
        self, now_ms: int, *, fail_on: int | None = None, funding: list[list[str]] | None = None
    ) -> None:
        super().__init__()
        self.marks = [row for row in MARKS if int(row[0]) <= now_ms]
        self.funding = [row for row in (funding or FUNDING) if int(row[0]) <= now_ms]
        self.now_ms = now_ms
        self.fail_on = fail_on
        self.requests: list[dict[str, str]] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        url = urlsplit(str(request.url))
        params = dict(parse_qsl(url.query))
        self.requests.append({"path": url.path, **params})
        if len(self.requests) == self.fail_on:
            raise requests.ConnectionError("connection reset by peer")
        assert (params["symbol"], params["productType"]) == ("XRPUSDT", "USDT-FUTURES")
        if url.path in MARK_PATHS:
            data: Any = self._marks(url.path, params)
        else:
            assert url.path == FUNDING_PATH, url.path
            data = self._funding(params)
        body = {"code": "00000", "msg": "success", "requestTime": str(self.now_ms), "data": data}
        return json_response(request, 200, body)

    def _marks(self, path: str, params: dict[str, str]) -> list[list[str]]:
        assert params["granularity"] == "1H"
        if path.endswith("/candles"):
            assert params["kLineType"] == "mark"
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", self.now_ms + 1))
        served = [row for row in self.marks if start <= int(row[0]) < end]
        return [[*row[:5], "0", "0"] for row in served[-int(params.get("limit", 100)) :]]

    def _funding(self, params: dict[str, str]) -> list[dict[str, str]]:
        size, number = int(params.get("pageSize", 20)), int(params.get("pageNo", 1))
        newest_first = self.funding[::-1][(number - 1) * size : number * size]
        return [{"symbol": "XRPUSDT", "fundingRate": r, "fundingTime": t} for t, r in newest_first]

    def close(self) -> None:
        pass

    def mark_starts(self) -> list[int]:
        return [int(request["startTime"]) for request in self.requests]

    def pages(self) -> list[int]:
        return [int(request["pageNo"]) for request in self.requests]


def floored(stamp: str) -> int:
    return int(stamp) - int(stamp) % EIGHT_HOURS


def bitget(transport: BitgetPerp) -> CcxtExchange:
    exchange = CcxtExchange.public("bitget")
    exchange.client.session.mount("https://", transport)
    return exchange


def fetch_marks(transport: BitgetPerp, **options: Any) -> Any:
    options = {"since_ms": T0, "page_limit": 30, **options}
    return mark_candles_fetch_from_exchange(
        exchange=bitget(transport), symbol=SYMBOL, timeframe="1h", now_ms=MARK_NOW, **options
    )


def fetch_funding(transport: BitgetPerp, **options: Any) -> Any:
    options = {"since_ms": int(FUNDING[0][0]) - 10 * MIN, "page_limit": 20, **options}
    return funding_rates_fetch_from_exchange(
        exchange=bitget(transport), symbol=SYMBOL, now_ms=FUNDING_NOW, **options
    )


def stored_marks() -> list[tuple[Any, ...]]:
    return list(
        MarkCandle.objects.filter(**KEY, timeframe="1h")
        .order_by("open_time")
        .values_list("open_time", "open", "high", "low", "close", "volume")
    )


def stored_funding() -> list[tuple[int, Decimal]]:
    rows = FundingRate.objects.filter(**KEY).order_by("funding_time")
    return list(rows.values_list("funding_time", "rate"))


# -- mark candles ---------------------------------------------------------------------------------


def test_it_fetches_every_closed_mark_candle_page_by_page(db: Any) -> None:
    # given
    transport = BitgetPerp(MARK_NOW)
    progress: list[tuple[int, int]] = []

    # when
    result = fetch_marks(transport, progress=lambda done, total: progress.append((done, total)))

    # then 99 candles in 4 pages of 30 (the 100th is still open), as the file imports, no volume
    assert (result.created, result.unchanged) == (99, 0)
    assert transport.mark_starts() == [T0 + page * 30 * HOUR for page in range(4)]
    assert {r["path"] for r in transport.requests} == {"/api/v2/mix/market/history-mark-candles"}
    steps = market_steps(**KEY)
    assert stored_marks() == [
        tuple(r) for r in read_mark_file(MARK_FILE, timeframe="1h", steps=steps)[:-1]
    ]
    assert stored_marks()[2][3] == Decimal("1.19972")  # 1.1997200000000001 upstream
    assert progress[0] == (0, 99)
    assert progress[-1] == (99, 99)


def test_it_resumes_an_interrupted_mark_fetch_without_fetching_stored_pages_again(
    db: Any,
) -> None:
    # given a fetch whose third request fails
    with pytest.raises(ExchangeError) as caught:
        fetch_marks(BitgetPerp(MARK_NOW, fail_on=3))
    assert caught.value.transient
    assert len(stored_marks()) == 60  # pages 1 and 2 are kept

    # when the same fetch runs again
    transport = BitgetPerp(MARK_NOW)
    result = fetch_marks(transport)

    # then it starts at the first missing candle and completes the range
    assert transport.mark_starts() == [T0 + 60 * HOUR, T0 + 90 * HOUR]
    assert (result.created, result.unchanged) == (39, 0)
    assert len(stored_marks()) == 99


def test_a_mark_fetch_counts_stored_candles_unchanged_and_a_complete_range_asks_nothing(
    db: Any,
) -> None:
    # given candles 0-9 and 20-29 stored from the file
    rows = read_mark_file(MARK_FILE, timeframe="1h")
    mark_candles_import(**KEY, timeframe="1h", rows=rows[:10] + rows[20:30])

    # when
    transport = BitgetPerp(MARK_NOW)
    result = fetch_marks(transport)

    # then it starts at candle 10; the stored ones it meets again are unchanged
    assert transport.mark_starts()[0] == T0 + 10 * HOUR
    assert (result.created, result.unchanged) == (79, 10)

    # and when it runs again, there is nothing to ask for
    again = BitgetPerp(MARK_NOW)
    assert fetch_marks(again).created == 0
    assert again.requests == []


def test_a_mark_candle_contradicting_the_stored_one_is_refused(db: Any) -> None:
    # given candle 40 stored with another close
    row = read_mark_file(MARK_FILE, timeframe="1h")[40]
    mark_candles_import(
        **KEY, timeframe="1h", rows=[row._replace(close=row.close + Decimal("0.001"))]
    )

    # when
    with pytest.raises(PerpDataError) as caught:
        fetch_marks(BitgetPerp(MARK_NOW))

    # then the page holding it is refused; the pages before it stay stored
    assert "mark candle 2021-11-16 22:00 UTC conflicts with the stored" in caught.value.message
    assert len(stored_marks()) == 30 + 1


# -- funding rates --------------------------------------------------------------------------------


def test_it_fetches_the_funding_history_walking_back_page_by_page(db: Any) -> None:
    # given
    transport = BitgetPerp(FUNDING_NOW)
    progress: list[tuple[int, int]] = []

    # when
    result = fetch_funding(transport, progress=lambda done, total: progress.append((done, total)))

    # then 91 rates in 5 pages of 20, newest first; stored as the file imports: the times
    # floored to the 8h boundary, the float noise rounded
    assert (result.created, result.unchanged) == (91, 0)
    assert transport.pages() == [1, 2, 3, 4, 5]
    assert {r["pageSize"] for r in transport.requests} == {"20"}
    assert {int(t) % EIGHT_HOURS for t, _ in FUNDING} != {0}
    assert stored_funding() == [tuple(r) for r in read_funding_file(FUNDING_FILE)]
    assert stored_funding()[0][0] == int(FUNDING[0][0]) - int(FUNDING[0][0]) % EIGHT_HOURS
    assert progress[0] == (0, 91)
    assert progress[-1] == (91, 91)


def test_it_resumes_an_interrupted_funding_fetch_without_fetching_stored_pages_again(
    db: Any,
) -> None:
    # given a fetch whose third request fails
    with pytest.raises(ExchangeError):
        fetch_funding(BitgetPerp(FUNDING_NOW, fail_on=3))
    assert len(stored_funding()) == 40  # the two newest pages are kept

    # when the same fetch runs again
    transport = BitgetPerp(FUNDING_NOW)
    result = fetch_funding(transport)

    # then it asks for the remaining pages only
    assert transport.pages() == [3, 4, 5]
    assert (result.created, result.unchanged) == (51, 0)
    assert len(stored_funding()) == 91


def test_a_funding_fetch_counts_stored_rates_unchanged_and_a_complete_range_asks_nothing(
    db: Any,
) -> None:
    # given all but the 5 newest rates stored from the file
    funding_rates_import(**KEY, rows=read_funding_file(FUNDING_FILE)[:-5])

    # when
    transport = BitgetPerp(FUNDING_NOW)
    result = fetch_funding(transport)

    # then one page: 5 new, 15 unchanged
    assert transport.pages() == [1]
    assert (result.created, result.unchanged) == (5, 15)

    # and when it runs again, there is nothing to ask for
    again = BitgetPerp(FUNDING_NOW)
    assert fetch_funding(again).created == 0
    assert again.requests == []


def test_a_funding_fetch_of_an_older_range_goes_straight_to_its_page(db: Any) -> None:
    # given rates 15 to 29 wanted (the newest is number 90, pages of 20)
    transport = BitgetPerp(FUNDING_NOW)

    # when
    result = fetch_funding(
        transport, since_ms=floored(FUNDING[15][0]), until_ms=floored(FUNDING[30][0])
    )

    # then page 4 holds numbers 11 to 30: one request, 15 stored
    assert transport.pages() == [4]
    assert result.created == 15
    assert [t for t, _ in stored_funding()] == [floored(t) for t, _ in FUNDING[15:30]]


def test_a_funding_stamp_far_from_the_boundary_is_refused(db: Any) -> None:
    # given the exchange stamps one rate two minutes after its boundary
    funding = [row[:] for row in FUNDING]
    funding[-3][0] = str(int(funding[-3][0]) + 2 * MIN)

    # when
    with pytest.raises(PerpDataError) as caught:
        fetch_funding(BitgetPerp(FUNDING_NOW, funding=funding))

    # then
    assert "is not at an 8-hour boundary" in caught.value.message
    assert stored_funding() == []


# -- the command ----------------------------------------------------------------------------------


def run(*args: str, stderr: io.StringIO | None = None) -> str:
    out = io.StringIO()
    call_command("import_perp_data", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize("tty", [False, True])
def test_the_command_fetches_marks_and_funding_with_a_progress_bar_only_on_a_terminal(
    db: Any, monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    # given Bitget (HTTP answered from the sample; long closed by now)
    transport = BitgetPerp(now_ms=FUNDING_NOW)
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: transport)
    stderr = FakeTTY() if tty else io.StringIO()

    # when: 2021-11-15 06:00 to 2021-11-17 06:00 UTC is 48 1h mark candles and 6 fundings
    output = run(
        "--symbol", SYMBOL, "--since", "2021-11-15T06:00", "--until", "2021-11-17T06:00",
        "--timeframe", "1h", stderr=stderr,
    )  # fmt: skip

    # then
    assert output == (
        f"bitget {SYMBOL} from 2021-11-15 06:00 UTC to 2021-11-17 06:00 UTC: "
        "mark 1h 48 new, 0 unchanged; funding rates 0 new, 0 unchanged\n"
    )
    assert len(stored_marks()) == 48
    if tty:
        assert stderr.getvalue().startswith(f"\rbitget {SYMBOL} mark 1h [")
        assert "] 100% 48/48\n" in stderr.getvalue()
        assert f"\rbitget {SYMBOL} funding [" in stderr.getvalue()
    else:
        assert stderr.getvalue() == ""


def test_the_command_fetches_only_funding(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    transport = BitgetPerp(now_ms=FUNDING_NOW)
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: transport)

    # when
    output = run("--symbol", SYMBOL, "--since", "2021-11-18", "--only", "funding")

    # then every rate from the first one on, and no mark candle
    assert output.endswith("to now: funding rates 91 new, 0 unchanged\n")
    assert {r["path"] for r in transport.requests} == {FUNDING_PATH}
    assert len(stored_funding()) == 91


def test_the_command_reports_an_unreachable_exchange(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given every request fails
    transport = BitgetPerp(now_ms=MARK_NOW, fail_on=1)
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: transport)

    # when
    with pytest.raises(CommandError) as caught:
        run("--symbol", SYMBOL, "--since", "2021-11-15", "--timeframe", "1h")

    # then
    assert str(caught.value) == (
        "bitget: could not reach bitget. The pages fetched so far are stored; "
        "run the same command again to resume."
    )


def test_the_command_reports_a_rate_contradicting_the_stored_one(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the 30th newest rate stored with another value
    row = read_funding_file(FUNDING_FILE)[-30]
    funding_rates_import(**KEY, rows=[row._replace(rate=row.rate + Decimal("0.0001"))])
    transport = BitgetPerp(now_ms=FUNDING_NOW)
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: transport)

    # when: pages of 20
    with pytest.raises(CommandError) as caught:
        run("--symbol", SYMBOL, "--since", "2021-11-18", "--only", "funding", "--page-limit", "20")

    # then the second page is refused, the first one is stored
    assert str(caught.value).startswith(f"bitget {SYMBOL}: funding rate ")
    assert "conflicts with the stored" in str(caught.value)
    assert str(caught.value).endswith("; that page was not stored, the pages before it are")
    assert len(stored_funding()) == 20 + 1


S = f"--symbol {SYMBOL}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--since 2024-01-01 --symbol BTC/USDT --timeframe 1h", "BTC/USDT is a spot market"),
        ("--since 2024-01-01 --symbol FOO/USDT:USDT --timeframe 1h", "unknown symbol"),
        (f"--since 2999-01-01 {S} --timeframe 1h", "--since (2999-01-01 00:00 UTC) is in the"),
        (
            f"--since 2024-01-02 --until 2024-01-01 {S} --timeframe 1h",
            "--until (2024-01-01 00:00 UTC) must be after --since (2024-01-02 00:00 UTC)",
        ),
        (f"--since 2024-01-01 {S} --timeframe 7m", "unknown timeframe '7m' for fetched mark"),
        (f"--since 2024-01-01 {S} --timeframe 8h", "unknown timeframe '8h' for fetched mark"),
        (f"--since 2024-01-01 {S}", "--timeframe is required for mark candles"),
        (f"--since 2024-01-01 {S} --only funding --timeframe 1h", "--only funding has none"),
        (f"--since 2024-01-01 {S} --timeframe 1h --page-limit 0", "--page-limit must be at"),
        (f"--since 2024-01-01 --sample {S}", "argument --sample: not allowed with argument"),
        (f"--since 2024-01-01 --mark m.csv {S}", "argument --mark: not allowed with argument"),
        (f"--funding f.csv --until 2024-01-01 {S}", "--until only applies to --since"),
        (f"--sample --only mark {S}", "--only only applies to --since"),
    ],
)
def test_the_command_refuses_bad_fetch_arguments_clearly(
    db: Any, monkeypatch: pytest.MonkeyPatch, args: str, message: str
) -> None:
    # given an exchange that must not be asked
    transport = BitgetPerp(now_ms=FUNDING_NOW)
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: transport)

    # when
    with pytest.raises(CommandError) as caught:
        run(*args.split())

    # then
    assert message in str(caught.value)
    assert transport.requests == []
    assert not MarkCandle.objects.exists()
    assert not FundingRate.objects.exists()


def test_a_funding_fetch_steps_back_a_page_when_the_exchange_has_fewer_rates(db: Any) -> None:
    # given the 40 newest rates stored, and an exchange that lacks rates 70 to 74 (a gap)
    funding_rates_import(**KEY, rows=read_funding_file(FUNDING_FILE)[-40:])
    transport = BitgetPerp(FUNDING_NOW, funding=FUNDING[:70] + FUNDING[75:])

    # when
    result = fetch_funding(transport)

    # then the grid puts rate 50 on page 3; it is on page 2: one step back, none missed
    assert transport.pages() == [3, 2, 3, 4, 5]
    assert result.created == 51
    assert stored_funding() == [tuple(r) for r in read_funding_file(FUNDING_FILE)]


def test_a_funding_fetch_finds_its_page_when_the_rates_stopped_long_ago(db: Any) -> None:
    # given a market whose last rate is 400 days old: the clock's grid puts rate 50 on page 63
    transport = BitgetPerp(FUNDING_NOW)
    until = floored(FUNDING[51][0])

    # when rates 0 to 50 are fetched
    result = funding_rates_fetch_from_exchange(
        exchange=bitget(transport), symbol=SYMBOL, since_ms=floored(FUNDING[0][0]),
        until_ms=until, page_limit=20, now_ms=FUNDING_NOW + 400 * 24 * HOUR,
    )  # fmt: skip

    # then the search halves back to page 2 (rates 70 to 51), then walks on
    assert transport.pages() == [63, 32, 16, 8, 4, 2, 3, 4, 5]
    assert result.created == 51
    assert [t for t, _ in stored_funding()] == [floored(t) for t, _ in FUNDING[:51]]


def test_a_mark_candle_the_csv_rules_refuse_is_refused(db: Any) -> None:
    # given the exchange serves a candle whose low is above its close
    transport = BitgetPerp(MARK_NOW)
    transport.marks[3] = [*transport.marks[3][:3], "9.99999", *transport.marks[3][4:]]

    # when
    with pytest.raises(PerpDataError) as caught:
        fetch_marks(transport)

    # then nothing of that page is stored
    assert "the exchange returned a mark candle that cannot be stored" in caught.value.message
    assert "do not hold open and close" in caught.value.message
    assert stored_marks() == []
