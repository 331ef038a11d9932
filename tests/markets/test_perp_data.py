"""The shipped XRP/USDT:USDT perp sample (trade candles, mark candles, funding rates): it loads
with the documented counts, idempotently, from the demo seed, and the candles API serves it."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from markets.exchanges.markets import shipped_catalog
from markets.models import Candle, FundingRate, MarkCandle
from markets.perp_data import (
    PERP_DATA_DIR,
    PERP_SAMPLE_SYMBOL,
    PerpDataError,
    funding_rates_import,
    perp_sample_load,
    read_funding_file,
    read_mark_file,
)
from markets.services import demo_market_seed

EIGHT_HOURS = 8 * 3_600_000
KEY = {"exchange": "bitget", "symbol": PERP_SAMPLE_SYMBOL}


def csv_rows(name):
    with (PERP_DATA_DIR / name).open() as stream:
        return list(csv.DictReader(stream))


@pytest.mark.django_db
def test_the_shipped_perp_sample_loads_with_its_counts():
    summary = perp_sample_load()

    assert summary.candles["5m"].created == 1_999
    assert Candle.objects.filter(**KEY, timeframe="5m").count() == 1_999
    assert MarkCandle.objects.filter(**KEY, timeframe="1h").count() == 100
    assert MarkCandle.objects.filter(**KEY, timeframe="8h").count() == 91
    assert FundingRate.objects.filter(**KEY).count() == 91
    # the 1h mark volume is empty in the file (NaN upstream): stored as NULL, not zero
    assert not MarkCandle.objects.filter(**KEY, timeframe="1h", volume__isnull=False).exists()
    assert not MarkCandle.objects.filter(**KEY, timeframe="8h", volume__isnull=True).exists()
    # funding stamps are 0-19 ms past the boundary: floored, they are the 8h mark times
    raw = [int(row["timestamp"]) for row in csv_rows("XRP_USDT_USDT-8h-funding_rate.csv")]
    assert {t % EIGHT_HOURS for t in raw} != {0}
    funding = list(FundingRate.objects.filter(**KEY).order_by("funding_time"))
    marks = MarkCandle.objects.filter(**KEY, timeframe="8h").order_by("open_time")
    assert [f.funding_time for f in funding] == list(marks.values_list("open_time", flat=True))
    assert [f.funding_time for f in funding] == [t - t % EIGHT_HOURS for t in raw]
    # float noise rounded: -0.0021933400000000002 is stored as -0.00219334
    assert min(f.rate for f in funding) == Decimal("-0.00219334")
    assert sum(f.rate > 0 for f in funding) == 87


@pytest.mark.django_db
def test_loading_the_sample_again_creates_nothing():
    perp_sample_load()
    counts = (Candle.objects.count(), MarkCandle.objects.count(), FundingRate.objects.count())
    again = perp_sample_load()
    assert again.created == 0
    assert again.funding.unchanged == 91
    assert (Candle.objects.count(), MarkCandle.objects.count(), FundingRate.objects.count()) == (
        counts
    )


@pytest.mark.django_db
def test_the_demo_seed_loads_the_perp_sample_once(user):
    first = demo_market_seed(trader=user)
    second = demo_market_seed(trader=user)
    assert first["perp_created"] > 1_999 + 91 + 191
    assert second["perp_created"] == 0
    assert FundingRate.objects.filter(**KEY).count() == 91


@pytest.mark.django_db
def test_the_candles_api_serves_the_perp_candles(auth_client):
    perp_sample_load()
    response = auth_client.get(
        "/api/candles", {"exchange": "bitget", "symbol": PERP_SAMPLE_SYMBOL, "timeframe": "5m"}
    )
    assert response.status_code == 200
    candles = response.json()["candles"]
    assert len(candles) == 200
    last = csv_rows("XRP_USDT_USDT-5m-futures.csv")[-1]
    assert candles[-1][0] == int(last["timestamp"])
    assert candles[-1][4] == pytest.approx(float(last["close"]))
    # the spot market of the same coin is another market: it has none of these candles
    spot = auth_client.get(
        "/api/candles", {"exchange": "bitget", "symbol": "XRP/USDT", "timeframe": "5m"}
    )
    assert spot.status_code == 200
    assert spot.json()["candles"] == []


@pytest.mark.django_db
def test_an_unknown_perp_symbol_is_a_400_envelope(auth_client):
    response = auth_client.get(
        "/api/candles", {"exchange": "bitget", "symbol": "XRP/USDT:BTC", "timeframe": "5m"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_symbol"


def test_the_catalog_has_the_linear_perps_with_their_rules():
    catalog = shipped_catalog("bitget")
    for symbol, leverage in (
        ("XRP/USDT:USDT", 125),
        ("BTC/USDT:USDT", 125),
        ("ETH/USDT:USDT", 100),
    ):
        market = catalog.market(symbol)
        assert (market["type"], market["linear"], market["settle"]) == ("swap", True, "USDT")
        assert market["contractSize"] == 1
        assert market["limits"]["leverage"]["max"] == leverage
    rules = catalog.rules("XRP/USDT:USDT")
    assert (rules.type, rules.price_step, rules.amount_step) == ("swap", Decimal("0.0001"), 1)
    assert catalog.rules("XRP/USDT").type == "spot"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1637222400007,abc", "'abc' is not a number"),
        ("1637208000000,0.0001", "not at an 8-hour boundary"),
        ("1637193600017,0.0001", "strictly ascending"),
        ("1637222400007", "expected 2 columns"),
    ],
)
def test_a_funding_file_with_a_bad_row_names_its_line(tmp_path, line, problem):
    path = write(tmp_path, "f.csv", f"timestamp,funding_rate\n1637193600017,0.0001\n{line}\n")
    with pytest.raises(PerpDataError) as caught:
        read_funding_file(path)
    assert "line 3" in caught.value.message
    assert problem in caught.value.message
    assert "nothing was imported" in caught.value.message
    assert not FundingRate.objects.exists()


@pytest.mark.django_db
def test_a_funding_rate_contradicting_the_stored_one_writes_nothing(tmp_path):
    stored = write(tmp_path, "a.csv", "timestamp,funding_rate\n1637193600017,0.0001\n")
    funding_rates_import(**KEY, rows=read_funding_file(stored))
    other = write(
        tmp_path, "b.csv", "timestamp,funding_rate\n1637193600017,0.0002\n1637222400007,0.0001\n"
    )
    with pytest.raises(PerpDataError, match="conflicts with the stored"):
        funding_rates_import(**KEY, rows=read_funding_file(other))
    assert list(FundingRate.objects.values_list("rate", flat=True)) == [Decimal("0.0001")]


def test_a_mark_file_with_a_bad_row_names_its_line(tmp_path):
    path = write(
        tmp_path,
        "m.csv",
        "timestamp,open,high,low,close,volume\n"
        "1636956000000,1.2,1.3,1.1,1.25,\n"
        "1636959600000,1.2,1.1,1.15,1.12,\n",
    )
    with pytest.raises(PerpDataError, match=r"line 3: low 1.15 / high 1.1"):
        read_mark_file(path, timeframe="1h")
    with pytest.raises(PerpDataError, match="unknown timeframe"):
        read_mark_file(path, timeframe="3h")


@pytest.mark.django_db
def test_the_import_command_stores_mark_candles_and_funding_idempotently():
    out = io.StringIO()
    mark = PERP_DATA_DIR / "XRP_USDT_USDT-1h-mark.csv"
    funding = PERP_DATA_DIR / "XRP_USDT_USDT-8h-funding_rate.csv"
    symbol = ["--symbol", PERP_SAMPLE_SYMBOL]
    call_command("import_perp_data", "--mark", str(mark), *symbol, "--timeframe", "1h", stdout=out)
    call_command("import_perp_data", "--funding", str(funding), *symbol, stdout=out)
    call_command("import_perp_data", "--funding", str(funding), *symbol, stdout=out)
    assert "mark 1h: 100 new, 0 unchanged" in out.getvalue()
    assert "funding rates: 91 new, 0 unchanged" in out.getvalue()
    assert "funding rates: 0 new, 91 unchanged" in out.getvalue()
    assert MarkCandle.objects.filter(volume__isnull=True).count() == 100


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbol", "XRP/USDT:BTC"], "unknown symbol 'XRP/USDT:BTC'"),
        (["--symbol", "XRP/USDT"], "spot market"),
        ([], "--symbol is required"),
    ],
)
def test_the_import_command_refuses_a_market_without_perp_data(args, message):
    funding = PERP_DATA_DIR / "XRP_USDT_USDT-8h-funding_rate.csv"
    with pytest.raises(CommandError, match=message):
        call_command("import_perp_data", "--funding", str(funding), *args)
    assert not FundingRate.objects.exists()


@pytest.mark.django_db
def test_the_import_command_reports_a_bad_funding_row_and_writes_nothing(tmp_path):
    path = write(
        tmp_path, "f.csv", "timestamp,funding_rate\n1637193600017,0.0001\n1637222400007,\n"
    )
    with pytest.raises(CommandError, match=r"f.csv, line 3: funding_rate '' is not a number"):
        call_command("import_perp_data", "--funding", str(path), "--symbol", PERP_SAMPLE_SYMBOL)
    assert not FundingRate.objects.exists()
