"""The staff console as a whole: every model of the platform is in the admin, every list renders,
and the lists of the big tables stay cheap (no whole-table count on PostgreSQL, no megabytes of
market metadata loaded for a list).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext

from markets.models import MarketSnapshot
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import paper_account, store_candles
from tradingbot import admin_paging

PLATFORM_APPS = ("accounts", "markets", "bots", "strategies", "backtests")


def platform_models() -> list[Any]:
    return [model for app in PLATFORM_APPS for model in apps.get_app_config(app).get_models()]


def changelist(model: Any) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


def test_every_model_of_the_platform_and_the_audit_trail_is_in_the_admin():
    missing = [
        model._meta.label
        for model in [*platform_models(), LogEntry]
        if not admin.site.is_registered(model)
    ]

    assert missing == []


@pytest.mark.parametrize("model", platform_models(), ids=lambda model: model._meta.label)
def test_every_list_and_first_page_renders(staff_client, user, model):
    # given: a few rows in the tables that have no service to fill them here
    strategy_catalogue_sync()
    store_candles(2000, 3)
    paper_account(user)
    MarketSnapshot.objects.create(exchange="bitget", markets={"BTC/USDT": {"id": "BTCUSDT"}})

    # when
    response = staff_client.get(changelist(model))

    # then
    assert response.status_code == 200
    first = model.objects.first()
    if first is not None:
        assert staff_client.get(f"{changelist(model)}{first.pk}/change/").status_code == 200


def test_the_market_snapshot_list_does_not_load_the_markets(staff_client):
    snapshot = MarketSnapshot.objects.create(
        exchange="bitget", markets={f"C{n}/USDT": {"id": f"C{n}USDT"} for n in range(500)}
    )

    with CaptureQueriesContext(connection) as listed:
        assert staff_client.get(changelist(MarketSnapshot)).status_code == 200
    table = MarketSnapshot._meta.db_table
    reads = [query["sql"] for query in listed.captured_queries if table in query["sql"]]
    page = staff_client.get(f"{changelist(MarketSnapshot)}{snapshot.pk}/change/")

    assert reads
    assert not [sql for sql in reads if '"markets"' in sql]
    assert "500" in page.content.decode()  # the page counts them


def test_the_candle_list_counts_the_whole_table_only_by_estimate_on_postgresql(
    staff_client, monkeypatch
):
    # given: stored candles, and the size from which the estimate is used lowered to nothing
    store_candles(2000, 5)
    monkeypatch.setattr(admin_paging, "ESTIMATE_ABOVE", 0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE candles")

    def counts(url: str) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(url).status_code == 200
        return [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]

    # when / then: a filtered list is counted exactly; the whole table only off PostgreSQL
    assert counts("/admin/markets/candle/?timeframe__exact=5m")
    whole = counts("/admin/markets/candle/")
    assert (whole == []) is (connection.vendor == "postgresql")
