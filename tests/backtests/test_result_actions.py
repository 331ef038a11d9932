"""From results to action: a sweep's ranking row opens its backtest and the bot form prefilled
with its configuration; a backtest's page offers "run as paper bot" (backtests/links.py, the bot
form's ``bot_prefill``). Through the Django test client on the real database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.test.html import parse_html

from backtests.links import bot_form_url
from backtests.models import Backtest
from bots.models import Bot
from tests.backtests.test_pages import find, html, make_backtest, make_sweep, tags, text
from tests.bots.bot_helpers import paper_account
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader_client(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


class FormValues(HTMLParser):
    """What a browser posts from ``#bot-form``: each input's value (a checked one for radios
    and checkboxes), each select's selected option; the chosen strategy's parameters only
    (bot_form.js disables the others)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._inside = found.get("id") == "bot-form"
        if not self._inside or ("name" not in found and tag != "option"):
            return
        if tag == "input":
            checkable = found.get("type") in ("radio", "checkbox")
            if checkable and "checked" not in found:
                return
            self.values[found["name"]] = found.get("value", "on" if checkable else "")
        elif tag == "select":
            self._select = found["name"]
        elif tag == "option" and self._select and "selected" in found:
            self.values[self._select] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "form":
            self._inside = False


def posted_form(page: str) -> dict[str, str]:
    parser = FormValues()
    parser.feed(page)
    values = parser.values
    chosen = values["strategy"]
    return {
        name: value
        for name, value in values.items()
        if "-" not in name or name.startswith(f"{chosen}-")
    }


def test_a_ranking_row_opens_its_combination_as_a_backtest_once(
    trader_client, user, sample_candles
):
    # given a finished sweep, its ranking's best row
    sweep = make_sweep(user, sample_candles)
    page = html(trader_client.get(f"/sweeps/{sweep.pk}/"))
    best = tags(tags(find(page, id="sweep-ranking"), "tbody")[0], "tr")[0]
    seq = int(dict(best.attributes)["data-seq"])
    action = dict(tags(best, "form")[0].attributes)["action"]
    assert action == f"/sweeps/{sweep.pk}/runs/{seq}/backtest/"

    # when its "Backtest" button is pressed
    response = trader_client.post(action)

    # then a backtest of that combination is queued and opened
    backtest = Backtest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/backtests/{backtest.pk}/"
    combination = sweep.runs.get(seq=seq)
    assert backtest.params == combination.params
    assert (backtest.start, backtest.end, backtest.symbol) == (sweep.start, sweep.end, "BTC/USDT")
    assert (backtest.user, backtest.status) == (user, "queued")

    # and pressed again (or seen on the page), the row leads to that same backtest
    again = trader_client.post(action)
    assert again["Location"] == f"/backtests/{backtest.pk}/"
    assert Backtest.objects.count() == 1
    page = html(trader_client.get(f"/sweeps/{sweep.pk}/"))
    row = find(page, **{"data-seq": str(seq)})
    link = find(row, class_="open-backtest")
    assert (dict(link.attributes)["href"], text(link)) == (
        f"/backtests/{backtest.pk}/",
        f"Backtest #{backtest.pk}",
    )


def test_another_traders_sweep_row_or_an_unknown_one_is_a_404(trader_client, sample_candles):
    others = make_sweep(UserFactory(), sample_candles, run=False)

    assert trader_client.post(f"/sweeps/{others.pk}/runs/0/backtest/").status_code == 404
    assert trader_client.get(f"/sweeps/{others.pk}/runs/0/backtest/").status_code == 405
    assert not Backtest.objects.exists()


def test_an_unknown_combination_is_a_404(trader_client, user, sample_candles):
    sweep = make_sweep(user, sample_candles, run=False)

    assert trader_client.post(f"/sweeps/{sweep.pk}/runs/99/backtest/").status_code == 404
    assert not Backtest.objects.exists()


def test_a_ranking_rows_bot_link_fills_the_bot_form_which_creates_that_bot(
    trader_client, user, sample_candles
):
    # given a finished sweep with exit levels, and a paper account on its exchange
    sweep = make_sweep(
        user, sample_candles, stop_loss=Decimal("0.025"), take_profit=Decimal("0.05")
    )
    account = paper_account(user)
    page = html(trader_client.get(f"/sweeps/{sweep.pk}/"))
    best = tags(tags(find(page, id="sweep-ranking"), "tbody")[0], "tr")[0]
    combination = sweep.runs.get(seq=int(dict(best.attributes)["data-seq"]))
    link = dict(find(best, class_="create-bot").attributes)["href"]
    assert urlsplit(link).path == "/bots/new/"
    assert parse_qs(urlsplit(link).query)["stop_loss_pct"] == ["2.5"]

    # when the link is followed and the form posted as the browser shows it
    form_page = trader_client.get(link)
    assert form_page.status_code == 200
    values = posted_form(form_page.content.decode())
    assert values["exchange_account"] == str(account.pk)
    response = trader_client.post("/bots/new/", values)

    # then the bot has the combination's parameters, market and exit levels
    assert response.status_code == 302, [
        line for line in response.content.decode().splitlines() if "error" in line
    ]
    bot = Bot.objects.get(user=user)
    assert bot.params == combination.params
    assert (bot.strategy_id, bot.symbol, bot.timeframe) == ("ma_cross", "BTC/USDT", "5m")
    assert (bot.stop_loss_pct, bot.take_profit_pct) == (Decimal("2.5"), Decimal("5"))
    assert bot.exchange_account == account


def test_a_backtest_offers_to_run_as_a_paper_bot_with_its_configuration(
    trader_client, user, sample_candles
):
    # given a finished backtest of EMA 12/40 with a stop
    backtest = make_backtest(
        user,
        sample_candles,
        params={"fast": 12, "slow": 40, "ma": "ema", "allow_short": False},
        stop_loss=Decimal("0.03"),
    )
    paper_account(user)

    # when its page is opened
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))

    # then "Run as paper bot" opens the bot form with that configuration
    button = find(page, id="run-as-paper-bot")
    href = dict(button.attributes)["href"]
    assert href == bot_form_url(backtest)
    form = trader_client.get(href).content.decode()
    values = posted_form(form)
    assert {name: values[name] for name in ("strategy", "symbol", "timeframe")} == {
        "strategy": "ma_cross",
        "symbol": "BTC/USDT",
        "timeframe": "5m",
    }
    assert (values["ma_cross-fast"], values["ma_cross-slow"], values["ma_cross-ma"]) == (
        "12",
        "40",
        '"ema"',
    )
    assert values["stop_loss_pct"] == "3"
    # a replay of it would start where the backtest did (the page is in UTC here)
    assert values["replay_start"] == backtest.start.strftime("%Y-%m-%dT%H:%M")


def test_a_link_with_bad_values_prefills_only_what_reads(trader_client, user, sample_candles):
    paper_account(user)

    query = "strategy=ma_cross&param_fast=abc&param_slow=45&param_ma=wma&symbol=ETH%2FUSDT"
    values = posted_form(trader_client.get(f"/bots/new/?{query}").content.decode())

    # a bad value keeps its default; nothing is created by opening the form
    assert (values["ma_cross-fast"], values["ma_cross-slow"], values["ma_cross-ma"]) == (
        "10",
        "45",
        '"sma"',
    )
    assert values["symbol"] == "ETH/USDT"
    assert not Bot.objects.exists()


def test_replay_from_defaults_to_the_first_stored_candle_and_shows_the_range(
    trader_client, user, sample_candles
):
    # given a trader in Paris and the stored BTC/USDT 5m sample
    user.time_zone = "Europe/Paris"
    user.save()
    paper_account(user)

    # when the new-bot form is opened for that market
    form = trader_client.get("/bots/new/?symbol=BTC%2FUSDT&timeframe=5m").content.decode()

    # then "Replay from" is the first stored candle, and the range is shown, in Paris time
    first = sample_candles.start.astimezone(ZoneInfo("Europe/Paris"))
    assert posted_form(form)["replay_start"] == first.strftime("%Y-%m-%dT%H:%M")
    hint = text(find(parse_html(form), id="replay-range"))
    assert hint.startswith(f"Stored 5m candles of BTC/USDT on bitget: {first:%Y-%m-%d %H:%M} → ")
    assert hint.endswith("(Europe/Paris).")


def test_the_sweep_page_names_parameters_by_their_labels(trader_client, user, sample_candles):
    sweep = make_sweep(user, sample_candles)

    page = html(trader_client.get(f"/sweeps/{sweep.pk}/"))

    header = [text(th) for th in tags(tags(find(page, id="sweep-ranking"), "thead")[0], "th")]
    assert header[1:3] == ["Fast average length", "Slow average length"]
    corner = text(find(find(page, id="heat-map"), class_="corner"))
    assert corner == "Slow average length ↓ / Fast average length →"


def test_a_perp_runs_link_carries_its_leverage_and_a_spot_runs_does_not(user):
    # given two unsaved runs, one on a perpetual swap at 3x
    perp = Backtest(
        user=user, strategy_id="ma_cross", params={"fast": 5, "slow": 20, "ma": "sma",
        "allow_short": True}, exchange="bitget", symbol="BTC/USDT:USDT", timeframe="1h",
        start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 2, 1, tzinfo=UTC),
        initial_cash=Decimal(1000), fee_rate=Decimal("0.0006"), leverage=3,
        take_profit=Decimal("0.04"),
    )  # fmt: skip
    spot = Backtest(
        user=user, strategy_id="ma_cross", params={}, exchange="bitget", symbol="BTC/USDT",
        timeframe="1h", start=perp.start, end=perp.end, initial_cash=Decimal(1000),
        fee_rate=Decimal("0.001"),
    )  # fmt: skip

    # then the perp's link asks for 3x, its take-profit in percent and shorts allowed
    query = parse_qs(urlsplit(bot_form_url(perp)).query)
    assert (query["leverage"], query["take_profit_pct"]) == (["3"], ["4"])
    assert query["param_allow_short"] == ["true"]
    assert query["replay_start"] == ["2024-01-01T00:00:00+00:00"]
    assert "stop_loss_pct" not in query
    assert "leverage" not in parse_qs(urlsplit(bot_form_url(spot)).query)
