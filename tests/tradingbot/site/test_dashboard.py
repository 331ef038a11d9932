"""The trader's dashboard: totals across accounts, the bots with start and stop, recent trades and
events; and times shown in the trader's own time zone."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.template.defaultfilters import floatformat
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from bots.models import Bot, BotEvent, Position, Trade
from bots.performance import bot_now, day_start
from markets.models import PaperBalance
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import COUNT, FIRST, holding_bot, live_bot, paper_account, store_candles
from tests.factories import DEFAULT_PASSWORD


@pytest.fixture
def rows(db: Any) -> list[Any]:
    strategy_catalogue_sync()
    return store_candles(FIRST, COUNT)


def section(html: str, element_id: str) -> str:
    return html.split(f'id="{element_id}"')[1].split("</section>")[0]


def test_totals_add_up_the_paper_accounts_equity_and_every_bots_pnl(trader_client, user, rows):
    # given: a bot holding BTC on one paper account, an idle paper account and a live account
    bot = holding_bot(user, paper_account(user, label="desk"), rows, "holder").bot
    paper_account(user, label="idle", usdt="500")
    live_bot(user)
    position = Position.objects.get(bot=bot)
    balances = {
        b.currency: b.free + b.used
        for b in PaperBalance.objects.filter(account=bot.exchange_account)
    }
    # and a realised loss on the replay's own day (its fills are in market time, years ago),
    # and one the day before, which is not "today" for it
    now = bot_now(bot)
    fill = {"bot": bot, "order": bot.orders.first(), "symbol": bot.symbol, "side": "sell",
            "qty": "0.001", "price": "20000"}  # fmt: skip
    Trade.objects.create(**fill, pnl="-7.25", time=now - timedelta(minutes=1))
    Trade.objects.create(**fill, pnl="-100", time=day_start(now, UTC) - timedelta(minutes=1))
    today = Trade.objects.filter(bot=bot, time__gte=day_start(now, UTC)).aggregate(t=Sum("pnl"))

    html = trader_client.get("/dashboard/").content.decode()

    equity = balances["USDT"] + balances["BTC"] * position.mark_price + Decimal(500)
    totals = section(html, "dashboard-totals")
    assert f"{floatformat(equity, 2)} USDT" in totals
    assert f"{floatformat(position.pnl + position.unrealized_pnl, 2)} USDT" in totals
    assert today["t"] <= Decimal("-7.25")
    assert f'id="total-today">{floatformat(today["t"], 2)} USDT' in totals
    assert "1 live account not included" in totals
    accounts = section(html, "dashboard-accounts")
    assert "on the exchange" in accounts  # the live account's equity is not guessed
    assert f"<td>{floatformat(Decimal(500), 2)}</td>" in accounts


def test_realised_today_is_the_traders_day_in_their_time_zone_for_a_live_bot(
    trader_client, user, rows
):
    # given: a live bot's fills now and just before midnight in Tokyo
    bot = live_bot(user)
    order = bot.orders.create(client_order_id="live-1", symbol=bot.symbol, side="sell",
                              order_type="market", qty=1, reason="signal", candle_ms=0)  # fmt: skip
    tokyo = ZoneInfo("Asia/Tokyo")
    midnight = day_start(timezone.now(), tokyo)
    fill = {"bot": bot, "order": order, "symbol": bot.symbol, "side": "sell", "qty": 1, "price": 1}
    Trade.objects.create(**fill, pnl="3.5", time=timezone.now())
    Trade.objects.create(**fill, pnl="-50", time=midnight - timedelta(minutes=1))
    user.time_zone = "Asia/Tokyo"
    user.save(update_fields=["time_zone"])

    html = trader_client.get("/dashboard/").content.decode()

    assert 'id="total-today">3.50 USDT' in section(html, "dashboard-totals")


def test_it_lists_only_the_traders_bots_with_status_position_and_buttons(
    trader_client, user, other_user, rows
):
    mine = holding_bot(user, paper_account(user), rows, "mine").bot
    theirs = holding_bot(other_user, paper_account(other_user), rows, "theirs").bot
    position = Position.objects.get(bot=mine)

    html = trader_client.get("/dashboard/").content.decode()

    bots = section(html, "dashboard-bots")
    assert f'id="bot-{mine.pk}"' in bots
    assert f'id="bot-{theirs.pk}"' not in bots
    assert "theirs" not in html
    row = bots.split(f'id="bot-{mine.pk}"')[1].split("</tr>")[0]
    assert "badge running bot-status" in row
    assert f'<td class="realised-pnl">{floatformat(position.pnl, 2)}</td>' in row
    assert f'action="/bots/{mine.pk}/stop/" class="bot-stop">' in row  # running: Stop shows
    assert f'action="/bots/{mine.pk}/start/" class="bot-start" hidden>' in row
    trades = section(html, "dashboard-trades")
    assert trades.count("<tr>") - 1 == min(20, Trade.objects.filter(bot=mine).count())
    events = section(html, "dashboard-events")
    newest = BotEvent.objects.filter(bot=mine).order_by("-time", "-id").first()
    assert newest is not None
    assert f'data-event-id="{newest.pk}"' in events


def test_stop_from_the_dashboard_comes_back_to_it(trader_client, user, rows):
    bot = holding_bot(user, paper_account(user), rows, "mine").bot

    response = trader_client.post(f"/bots/{bot.pk}/stop/", {"next": "dashboard"})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert Bot.objects.get(pk=bot.pk).status == "stopped"


def test_empty_states_say_what_to_do_next(trader_client, user, db):
    html = trader_client.get("/dashboard/").content.decode()
    assert "Add a paper account" in section(html, "dashboard-accounts")
    assert "Create a bot" in section(html, "dashboard-bots")
    assert "No trades yet" in section(html, "dashboard-trades")


def test_the_totals_panel_alone_is_served_to_its_trader_only(trader_client, client, user, rows):
    paper_account(user, usdt="1234.5")
    response = trader_client.get("/dashboard/totals/")
    assert response.status_code == 200
    assert response.content.decode().strip().startswith('<div class="totals" id="totals">')
    assert "1234.50 USDT" in response.content.decode()
    # the accounts table comes with it, from the same read: its equity cannot lag the header's
    accounts = response.content.decode().split('id="accounts-table"')[1]
    assert "<td>1234.50</td>" in accounts
    anonymous = Client()
    assert anonymous.get("/dashboard/totals/").status_code == 302


def test_times_are_shown_in_the_traders_time_zone(trader_client, user, rows):
    bot = holding_bot(user, paper_account(user), rows, "tz").bot
    event = BotEvent.objects.filter(bot=bot).order_by("-time", "-id").first()
    assert event is not None
    user.time_zone = "Asia/Tokyo"
    user.save(update_fields=["time_zone"])

    html = trader_client.get("/dashboard/").content.decode()

    tokyo = event.time.astimezone(ZoneInfo("Asia/Tokyo"))
    row = section(html, "dashboard-events").split(f'data-event-id="{event.pk}"')[1]
    assert row.split("</td>")[0].endswith(tokyo.strftime("%Y-%m-%d %H:%M:%S"))
    assert 'data-time-zone="Asia/Tokyo"' in html
    assert "Times are in your time zone, Asia/Tokyo." in html


@pytest.mark.parametrize(("sent", "kept"), [("America/New_York", "America/New_York"),
                                            ("Mars/Olympus", "UTC"), ("", "UTC")])  # fmt: skip
def test_logging_in_keeps_the_browsers_time_zone_if_it_is_a_real_one(client, user, sent, kept):
    response = client.post(
        "/accounts/login/",
        {"email": user.email, "password": DEFAULT_PASSWORD, "time_zone": sent},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.time_zone == kept


def test_a_bad_stored_time_zone_is_refused_by_the_model(user):
    user.time_zone = "Not/AZone"
    with pytest.raises(ValidationError):
        user.full_clean()
    assert account_services.user_time_zone_set(user=user, name="Not/AZone") is False
