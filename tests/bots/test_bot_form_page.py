"""The bot form (create and edit), generated from the strategies' parameter declarations and
validated on the server; and the bot page's chart data and paged trades."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from bots.models import Bot, Trade
from markets.models import Candle
from tests.bots.bot_helpers import holding_bot, paper_account


def form_data(account: Any, **changes: Any) -> dict[str, Any]:
    """A valid MA Cross bot on a live feed, as the browser posts the form."""
    data = {
        "name": "ma bot", "exchange_account": account.pk, "symbol": "BTC/USDT", "timeframe": "5m",
        "strategy": "ma_cross", "ma_cross-fast": 10, "ma_cross-slow": 30, "ma_cross-ma": '"sma"',
        "data_source": "live", "order_size_kind": "fraction", "order_size": "0.5",
    }  # fmt: skip
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def field_errors(response: Any, marker: str) -> str:
    """The HTML of one field's block (``field-<name>``), where its errors are shown."""
    html = response.content.decode()
    return html.split(f'id="field-{marker}"')[1].split('<div class="field')[0]


def test_the_form_offers_each_strategys_parameters_with_bounds_and_help(trader_client, user, rows):
    paper_account(user)

    html = trader_client.get("/bots/new/").content.decode()

    ma = html.split('id="params-ma_cross"')[1].split("</fieldset>")[0]
    assert 'name="ma_cross-fast"' in ma
    assert 'min="2"' in ma
    assert 'max="500"' in ma
    assert "Fast moving-average length, in candles (an integer between 2 and 500)" in ma
    assert '<option value="&quot;ema&quot;">ema</option>' in ma
    assert "allow_short" in ma  # a perp bot may short; the service refuses it on spot
    assert 'id="params-rsi_reversion"' in html
    assert "csrfmiddlewaretoken" in html


def test_a_valid_form_creates_the_bot_and_opens_its_page(trader_client, user, rows):
    account = paper_account(user)

    response = trader_client.post("/bots/new/", form_data(account, **{"ma_cross-ma": '"ema"'}))

    bot = Bot.objects.get(user=user, name="ma bot")
    assert response.status_code == 302
    assert response["Location"] == f"/bots/{bot.pk}/"
    assert (bot.strategy_id, bot.status) == ("ma_cross", "stopped")
    assert bot.params == {"fast": 10, "slow": 30, "ma": "ema", "allow_short": False}
    assert str(bot.order_size) == "0.500000000000"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"ma_cross-fast": 1}, "ma_cross-fast", "greater than or equal to 2"),
        # the strategy's own cross-field check, on the field it names
        ({"ma_cross-fast": 40}, "ma_cross-slow", "slow must be greater than fast (40), got 30"),
        ({"symbol": "NOPE/USDT"}, "symbol", "NOPE/USDT"),
        ({"order_size": "1.5"}, "order_size", "at most 1"),
        ({"data_source": "replay"}, "replay_start", "A replay needs this."),
        ({"name": ""}, "name", "This field is required."),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_creates_nothing(
    trader_client, user, rows, changes, field, message
):
    account = paper_account(user)

    response = trader_client.post("/bots/new/", form_data(account, **changes))

    assert response.status_code == 400
    assert message in field_errors(response, field)
    assert not Bot.objects.filter(user=user).exists()


def test_another_traders_account_cannot_be_chosen(trader_client, user, other_user, rows):
    paper_account(user)
    theirs = paper_account(other_user, label="theirs")

    response = trader_client.post("/bots/new/", form_data(theirs))

    assert response.status_code == 400
    assert "Select a valid choice" in field_errors(response, "exchange_account")
    assert not Bot.objects.exists()


def test_without_an_account_the_page_says_to_add_one(trader_client, user, rows):
    html = trader_client.get("/bots/new/").content.decode()
    assert "Add a paper account" in html
    assert 'id="bot-form"' not in html


def test_edit_changes_a_stopped_bot_and_another_traders_bot_is_a_404(
    trader_client, user, other_user, rows
):
    account = paper_account(user)
    trader_client.post("/bots/new/", form_data(account))
    bot = Bot.objects.get(user=user)
    page = trader_client.get(f"/bots/{bot.pk}/edit/").content.decode()
    assert 'value="ma bot"' in page  # the form starts from the bot as stored

    response = trader_client.post(
        f"/bots/{bot.pk}/edit/", form_data(account, name="renamed", **{"ma_cross-slow": 50})
    )

    bot.refresh_from_db()
    assert response.status_code == 302
    assert (bot.name, bot.params["slow"]) == ("renamed", 50)
    other = Client()
    other.force_login(other_user)
    assert other.get(f"/bots/{bot.pk}/edit/").status_code == 404
    assert other.post(f"/bots/{bot.pk}/edit/", form_data(account, name="x")).status_code == 404
    bot.refresh_from_db()
    assert bot.name == "renamed"


def test_a_running_bot_cannot_be_edited(trader_client, user, rows):
    bot = holding_bot(user, paper_account(user), rows, "runner").bot

    response = trader_client.post(
        f"/bots/{bot.pk}/edit/", form_data(bot.exchange_account, name="changed")
    )

    assert response.status_code == 409
    assert "Stop the bot before changing it." in response.content.decode()
    bot.refresh_from_db()
    assert bot.name == "runner"


def test_the_page_embeds_its_candles_fills_and_entry_price_for_the_chart(trader_client, user, rows):
    bot = holding_bot(user, paper_account(user), rows, "charted").bot
    bot.refresh_from_db()

    html = trader_client.get(f"/bots/{bot.pk}/").content.decode()

    chart = json.loads(html.split('id="bot-chart-data" type="application/json">')[1].split("<")[0])
    candles = chart["candles"]
    stored = Candle.objects.filter(
        symbol=bot.symbol, timeframe=bot.timeframe, open_time__lte=bot.last_candle_ms
    )
    assert len(candles) == min(200, stored.count()) > 20
    # up to the replay's own clock: its last candle is the last one the bot acted on
    assert candles[-1][0] == bot.last_candle_ms
    assert [c[0] for c in candles] == sorted(c[0] for c in candles)
    fills = Trade.objects.filter(bot=bot, time__gte=_as_dt(candles[0][0]))
    assert len(chart["markers"]) == fills.count() > 0
    assert {m["side"] for m in chart["markers"]} == {"buy", "sell"}
    assert all(m["time"] % chart["timeframe_ms"] == 0 for m in chart["markers"])
    position = bot.positions.get()
    assert chart["entry_price"] == pytest.approx(float(position.entry_price))


def test_trades_are_paged_twenty_at_a_time_newest_first(trader_client, user, rows):
    bot = holding_bot(user, paper_account(user), rows, "pager").bot
    order = bot.orders.first()
    newest = Trade.objects.filter(bot=bot).order_by("-time").first()
    assert order is not None
    assert newest is not None
    for index in range(45):
        Trade.objects.create(
            bot=bot, order=order, symbol=bot.symbol, side="buy", qty="0.001",
            price=f"{20000 + index}.00", time=_as_dt(1_500_000_000_000), fee=0,
        )  # fmt: skip
    total = Trade.objects.filter(bot=bot).count()

    first = trader_client.get(f"/bots/{bot.pk}/").content.decode()
    last = trader_client.get(f"/bots/{bot.pk}/?trades_page=99").content.decode()

    pages = -(-total // 20)
    assert f"Page 1 of {pages}" in first
    assert 'data-live="true"' in first
    assert f"Page {pages} of {pages}" in last  # past the end: the last page
    assert 'data-live="false"' in last
    first_trades = first.split('id="bot-trades"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert first_trades.count("<tr>") == 20
    assert f"<td>{newest.price.quantize(Decimal('0.01'))}</td>" in first_trades


def _as_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
