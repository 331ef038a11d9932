"""The exchange accounts page shows each account's balances without asking the exchange: a
paper account's from its ledger, a live account's from its last fetch (with its time), which the
trader may repeat with "Fetch now"."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import pytest
from django.core.cache import cache
from django.test import Client

from markets.models import PaperBalance
from markets.selectors import balance_cache_key
from tests.admin_helpers import shown_messages
from tests.bots.bot_helpers import paper_account
from tests.markets.test_exchange_account_api import exchange_fails, recorded_bitget  # noqa: F401

PAGE = "/exchange-accounts/"


@pytest.fixture
def live(user: Any, exchange_account_factory: Any) -> Any:
    account = exchange_account_factory(
        user=user, label="Bitget live", mode="live", api_key="key-12345678",
        api_secret="sec-12345678", passphrase="pp",
    )  # fmt: skip
    cache.delete(balance_cache_key(account.pk))
    yield account
    cache.delete(balance_cache_key(account.pk))


def row_of(html: str, account: Any) -> str:
    start = html.index(f'id="account-{account.pk}"')
    return html[start : html.index("</tr>", start)]


@pytest.mark.django_db
def test_the_page_shows_the_paper_ledger_and_never_asks_the_exchange(
    trader_client, user, live, monkeypatch
):
    # given a paper account with part of its USDT reserved by an open order, and an exchange
    # that would fail any request
    paper = paper_account(user, usdt="10000", label="Paper")
    PaperBalance.objects.filter(account=paper, currency="USDT").update(
        free=Decimal("9900.5"), used=Decimal("99.5")
    )
    PaperBalance.objects.create(account=paper, currency="BTC", free=Decimal("0.0015"))
    exchange_fails(monkeypatch, ccxt.NetworkError("no network in this test"))

    # when the trader opens the page
    response = trader_client.get(PAGE)

    # then the paper balances show as the ledger has them; the live account is not fetched yet
    assert response.status_code == 200
    html = response.content.decode()
    paper_row = row_of(html, paper)
    assert '<li data-currency="USDT"><strong>USDT</strong> <span class="total">10000</span>' in (
        paper_row
    )
    assert "(99.5 in orders)" in paper_row
    assert '<strong>BTC</strong> <span class="total">0.0015</span></li>' in paper_row
    live_row = row_of(html, live)
    assert "not fetched yet" in live_row
    assert f'action="/exchange-accounts/{live.pk}/balance/"' in live_row


@pytest.mark.django_db
def test_fetch_now_shows_a_live_accounts_balances_with_their_time(
    trader_client,
    live,
    recorded_bitget,  # noqa: F811
):
    # when the trader asks for the live account's balances
    response = trader_client.post(f"/exchange-accounts/{live.pk}/balance/", follow=True)

    # then they come from the exchange, and the page shows them with the time of the fetch
    assert recorded_bitget, "fetched through ccxt"
    assert response.redirect_chain == [(PAGE, 302)]
    assert "Balances of “Bitget live” fetched." in shown_messages(response)
    live_row = row_of(response.content.decode(), live)
    assert '<strong>USDT</strong> <span class="total">23.35159289</span>' in live_row
    assert "as of " in live_row
    # and a later page load shows them again without asking the exchange
    calls = len(recorded_bitget)
    again = row_of(trader_client.get(PAGE).content.decode(), live)
    assert "23.35159289" in again
    assert len(recorded_bitget) == calls


@pytest.mark.django_db
def test_a_failed_fetch_says_why_and_keeps_the_page(trader_client, live, monkeypatch):
    exchange_fails(monkeypatch, ccxt.NetworkError("connection reset"))

    response = trader_client.post(f"/exchange-accounts/{live.pk}/balance/", follow=True)

    assert response.status_code == 200
    assert any("not fetched" in m for m in shown_messages(response))
    assert "not fetched yet" in row_of(response.content.decode(), live)


@pytest.mark.django_db
def test_fetch_now_is_the_owners_and_csrf_protected(user, other_user, exchange_account_factory):
    theirs = exchange_account_factory(user=other_user, mode="live", api_key="k", api_secret="s",
                                      passphrase="p")  # fmt: skip
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/exchange-accounts/{theirs.pk}/balance/").status_code == 403
    client.get(PAGE)
    token = client.cookies["csrftoken"].value
    response = client.post(
        f"/exchange-accounts/{theirs.pk}/balance/", {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 404
    assert client.get(f"/exchange-accounts/{theirs.pk}/balance/").status_code == 405
