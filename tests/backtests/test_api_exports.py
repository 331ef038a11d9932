"""``GET /api/backtests/<id>/export?format=csv|json``: a finished backtest's trades, metrics and
report as a file, against the stored trades; scoping, bad formats and unfinished runs."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import pytest

from backtests import services
from backtests.models import Backtest, BacktestTrade, RunStatus
from tests.backtests.api_helpers import BACKTESTS, all_pages, decimal_text, error_of
from tests.backtests.run_helpers import create_backtest
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

COLUMNS = [
    "seq", "side", "entry_time", "entry_time_iso", "exit_time", "exit_time_iso", "entry_price",
    "exit_price", "qty", "fee", "pnl", "return", "exit_reason", "leverage", "funding",
]  # fmt: skip


def finished(user: Any, market: Any, **overrides: Any) -> Backtest:
    backtest = create_backtest(user, market, **overrides)
    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.DONE
    backtest.refresh_from_db()
    assert backtest.trade_count > 0
    return backtest


def export(client: Any, backtest_id: int, file_format: str | None) -> Any:
    query = "" if file_format is None else f"?format={file_format}"
    return client.get(f"{BACKTESTS}/{backtest_id}/export{query}")


def content(response: Any) -> str:
    return b"".join(response.streaming_content).decode()


def test_csv_has_a_header_row_and_one_row_per_stored_trade(auth_client, user, sample_candles):
    # given a finished backtest with stop-losses, so that several exit reasons occur
    backtest = finished(user, sample_candles, stop_loss="0.004")

    # when
    response = export(auth_client, backtest.pk, "csv")

    # then it is a CSV attachment
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="backtest-{backtest.pk}-trades.csv"'
    )
    rows = list(csv.reader(io.StringIO(content(response))))
    assert rows[0] == COLUMNS
    # and its rows are the stored trades, in order, every column as stored
    trades = list(BacktestTrade.objects.filter(backtest=backtest).order_by("seq"))
    assert len(rows) - 1 == len(trades) == backtest.trade_count
    for row, trade in zip(rows[1:], trades, strict=True):
        record = dict(zip(COLUMNS, row, strict=True))
        assert int(record["seq"]) == trade.seq
        assert record["side"] == trade.side
        assert int(record["entry_time"]) == trade.entry_time
        assert int(record["exit_time"]) == trade.exit_time
        assert record["entry_price"] == decimal_text(trade.entry_price)
        assert record["qty"] == decimal_text(trade.qty)
        assert record["pnl"] == decimal_text(trade.pnl)
        assert record["fee"] == decimal_text(trade.fee)
        assert float(record["return"]) == trade.return_rate
        assert record["exit_reason"] == trade.exit_reason
    assert {row[12] for row in rows[1:]} >= {"signal", "stop_loss"}
    # and the ISO times are the epoch ones, in UTC
    first = dict(zip(COLUMNS, rows[1], strict=True))
    assert first["entry_time_iso"].endswith("Z")
    assert sample_candles.start.isoformat().replace("+00:00", "Z") <= first["entry_time_iso"]


def test_json_has_the_backtest_its_metrics_report_and_trades(auth_client, user, sample_candles):
    # given a trader in Tokyo and a finished backtest
    user.time_zone = "Asia/Tokyo"
    user.save(update_fields=["time_zone"])
    backtest = finished(user, sample_candles)

    # when
    response = export(auth_client, backtest.pk, "json")

    # then
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="backtest-{backtest.pk}.json"'
    body = json.loads(response.content)
    assert set(body) == {"backtest", "metrics", "report", "trades"}
    assert body["backtest"]["id"] == backtest.pk
    assert body["metrics"] == backtest.metrics
    # the trades are those of the paged trades endpoint, with their ISO times on top
    paged = all_pages(auth_client, f"{BACKTESTS}/{backtest.pk}/trades", page_size=1000)
    assert [{k: t[k] for k in paged[0]} for t in body["trades"]] == paged
    # and the report's months compound to the total return, in the trader's time zone
    report = body["report"]
    assert report["time_zone"] == "Asia/Tokyo"
    growth = math.prod(1 + month["return"] for month in report["months"])
    assert growth - 1 == pytest.approx(backtest.metrics["total_return"], abs=1e-9)
    assert sum(row["trades"] for row in report["exit_reasons"]) == backtest.trade_count
    # and the Monte Carlo of the trades: 1,000 runs, from the backtest's own final equity
    monte_carlo = report["monte_carlo"]
    assert (monte_carlo["runs"], monte_carlo["trades"]) == (1000, backtest.trade_count)
    assert monte_carlo["original_final_equity"] == pytest.approx(
        backtest.metrics["final_equity"], rel=1e-9
    )
    assert set(monte_carlo["shuffled_max_drawdown"]) == {"p5", "p50", "p95"}


@pytest.mark.parametrize("file_format", [None, "xml", "CSV", ""])
def test_a_missing_or_unknown_format_is_a_400_in_the_envelope(
    auth_client, user, sample_candles, file_format
):
    backtest = finished(user, sample_candles)
    error = error_of(export(auth_client, backtest.pk, file_format), 400)
    assert error["code"] == "validation_error"
    assert "format" in error["details"]


def test_another_users_backtest_is_a_404_whatever_the_format(auth_client, sample_candles):
    backtest = finished(UserFactory(), sample_candles)
    for file_format in ("csv", "json", None, "xml"):
        assert error_of(export(auth_client, backtest.pk, file_format), 404)["code"] == "not_found"


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FAILED])
def test_an_unfinished_backtest_is_a_409_not_done(auth_client, user, sample_candles, status):
    # given a backtest that is not done
    backtest = create_backtest(user, sample_candles)
    Backtest.objects.filter(pk=backtest.pk).update(status=status)

    # when / then
    error = error_of(export(auth_client, backtest.pk, "csv"), 409)
    assert error["code"] == "not_done"
    assert error["details"] == {"status": status}


def test_it_needs_credentials(api_client, user, sample_candles):
    backtest = finished(user, sample_candles)
    assert error_of(export(api_client, backtest.pk, "csv"), 401)["code"] == "not_authenticated"


def test_the_session_of_the_page_downloads_it_too(client, user, sample_candles):
    # given the trader signed in on the site (the page's download links)
    backtest = finished(user, sample_candles)
    client.force_login(user)

    # when / then
    response = export(client, backtest.pk, "csv")
    assert response.status_code == 200
    assert content(response).count("\n") == backtest.trade_count + 1
