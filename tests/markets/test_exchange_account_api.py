from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest

from markets.models import ExchangeAccount, PaperBalance

LIST = "/api/exchange-accounts"
RECORDED = Path(__file__).resolve().parent.parent / "data" / "ccxt-bitget"


@pytest.mark.django_db
def test_a_paper_account_is_funded_on_creation(auth_client):
    # when
    response = auth_client.post(
        LIST,
        {"exchange": "bitget", "label": "paper", "mode": "paper",
         "paper_balance": {"USDT": "10000", "BTC": "0.5"}},
        format="json",
    )  # fmt: skip
    # then
    assert response.status_code == 201
    balance = auth_client.get(f"{LIST}/{response.json()['id']}/balance")
    assert balance.status_code == 200
    assert balance.json() == {
        "balances": {
            "BTC": {"free": "0.5", "used": "0", "total": "0.5"},
            "USDT": {"free": "10000", "used": "0", "total": "10000"},
        }
    }


@pytest.mark.django_db
def test_a_paper_account_without_a_balance_gets_the_default(auth_client):
    response = auth_client.post(
        LIST, {"exchange": "bitget", "label": "p", "mode": "paper"}, format="json"
    )
    balances = auth_client.get(f"{LIST}/{response.json()['id']}/balance").json()["balances"]
    assert balances == {"USDT": {"free": "10000", "used": "0", "total": "10000"}}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "paper_balance",
    [{"NOPE": "1"}, {"USDT": "-1"}, {"USDT": "abc"}, {"USDT": "1e20"}, {}, ["USDT", 1], "10000"],
)
def test_a_bad_paper_balance_is_a_400_and_writes_nothing(auth_client, paper_balance):
    response = auth_client.post(
        LIST,
        {"exchange": "bitget", "label": "p", "mode": "paper", "paper_balance": paper_balance},
        format="json",
    )
    assert response.status_code == 400
    assert "paper_balance" in json.dumps(response.json()["error"])
    assert not ExchangeAccount.objects.exists()
    assert not PaperBalance.objects.exists()


@pytest.mark.django_db
def test_a_live_account_takes_no_paper_balance(auth_client):
    response = auth_client.post(
        LIST,
        {"exchange": "bitget", "label": "l", "mode": "live", "api_key": "k" * 10,
         "api_secret": "s" * 10, "passphrase": "p" * 10, "paper_balance": {"USDT": "1"}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400
    assert not ExchangeAccount.objects.exists()


@pytest.mark.django_db
def test_another_users_balance_is_a_404(auth_client, other_user, exchange_account_factory):
    theirs = exchange_account_factory(user=other_user)
    assert auth_client.get(f"{LIST}/{theirs.pk}/balance").status_code == 404


@pytest.fixture
def recorded_bitget(monkeypatch):
    """Replace only ccxt's HTTP transport: Bitget's recorded spot balance comes back."""
    cases = json.loads((RECORDED / "response.bitget.subset.json").read_text())["methods"]
    spot = next(c for c in cases["fetchBalance"] if c["description"] == "spot balance")
    calls = []

    def fetch(self, url, method="GET", headers=None, body=None):
        calls.append(url)
        if "/spot/account/assets" in url:
            return spot["httpResponse"]
        # ccxt's one-off probe for a unified account: answer as Bitget does for a classic one.
        raise ccxt.ExchangeError("bitget not a unified trading account")

    monkeypatch.setattr(ccxt.bitget, "fetch", fetch)
    return calls


@pytest.fixture
def live_account(user, exchange_account_factory):
    return exchange_account_factory(
        user=user, mode="live", api_key="key-12345678", api_secret="sec-12345678", passphrase="pp"
    )


def exchange_fails(monkeypatch, error):
    """Every HTTP call of ccxt's bitget client raises ``error``, as ccxt raises it."""

    def fetch(self, url, method="GET", headers=None, body=None):
        raise error

    monkeypatch.setattr(ccxt.bitget, "fetch", fetch)


@pytest.mark.django_db
def test_a_live_accounts_balance_comes_from_the_exchange(
    auth_client, live_account, recorded_bitget
):
    response = auth_client.get(f"{LIST}/{live_account.pk}/balance")
    assert response.status_code == 200
    balances = response.json()["balances"]
    assert balances["USDT"]["total"] == "23.35159289"
    assert Decimal(balances["BGB"]["free"]) == Decimal("1.15")
    assert recorded_bitget, "the balance must come through ccxt's HTTP call"
    assert "sec-12345678" not in response.content.decode()


@pytest.mark.django_db
def test_a_rejected_api_key_is_a_clear_400(auth_client, live_account, monkeypatch):
    exchange_fails(
        monkeypatch,
        ccxt.AuthenticationError('bitget {"code":"40037","msg":"Apikey does not exist"}'),
    )
    response = auth_client.get(f"{LIST}/{live_account.pk}/balance")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "exchange_auth_failed"
    assert response.json()["error"]["message"] == "exchange rejected the API key"


@pytest.mark.django_db
def test_network_trouble_is_a_503(auth_client, live_account, monkeypatch):
    exchange_fails(monkeypatch, ccxt.NetworkError("connection reset"))
    response = auth_client.get(f"{LIST}/{live_account.pk}/balance")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "exchange_unavailable"


@pytest.mark.django_db
def test_an_expected_503_is_logged_at_warning_in_one_line_per_request(
    auth_client, live_account, monkeypatch, caplog
):
    # given: the exchange cannot be reached
    exchange_fails(monkeypatch, ccxt.NetworkError("connection reset"))
    for attempt in range(2):
        caplog.clear()
        # when
        with caplog.at_level(logging.INFO):
            response = auth_client.get(f"{LIST}/{live_account.pk}/balance")
        # then: the access line says it (the adapter adds one when the outage starts), no ERROR
        assert response.status_code == 503
        assert [r.levelno for r in caplog.records] == [logging.WARNING] * (2 - attempt)
        assert all(r.exc_info is None for r in caplog.records)
        [access] = [r for r in caplog.records if r.name == "tradingbot.access"]
        assert (access.status, access.error) == (503, "exchange_unavailable")
