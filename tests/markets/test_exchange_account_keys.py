"""A live exchange account's keys are checked against the exchange when it is saved (a balance
fetch through ccxt, answered at the HTTP layer): rejected keys refuse the save with what the
exchange said; an exchange that cannot be reached saves the account "unverified"."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from markets.models import ExchangeAccount
from markets.services import exchange_account_verify
from tests.markets.ccxt_replay import BitgetAccount, block_network
from tests.markets.test_exchange_accounts import LIVE
from tradingbot.errors import AppError

LIST = "/api/exchange-accounts"
PAGE = "/exchange-accounts/"
SECRETS = (LIVE["api_key"], LIVE["api_secret"], LIVE["passphrase"])


@pytest.fixture
def bitget(monkeypatch: pytest.MonkeyPatch) -> BitgetAccount:
    return BitgetAccount().install(monkeypatch)


def _no_secret_in(*texts: str) -> bool:
    joined = "\n".join(texts)
    return not any(secret in joined for secret in SECRETS)


# --- the API -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_keys_the_exchange_accepts_save_the_account_verified(auth_client, bitget):
    # when
    response = auth_client.post(LIST, LIVE, format="json")
    # then: the balance was asked with the keys, signed by ccxt
    assert response.status_code == 201
    body = response.json()
    assert body["verification"] == "verified"
    assert body["verified_at"] is not None
    assert body["verification_error"] == ""
    assert any(r.headers.get("ACCESS-KEY") == LIVE["api_key"] for r in bitget.sent)
    assert ExchangeAccount.objects.get().verified_at is not None


@pytest.mark.django_db
def test_keys_the_exchange_rejects_are_refused_with_its_message_and_nothing_saved(
    auth_client, bitget, caplog
):
    # given
    bitget.state = "rejecting"
    caplog.set_level(logging.DEBUG)
    # when
    response = auth_client.post(LIST, LIVE, format="json")
    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "exchange_auth_failed"
    assert error["message"] == "Bitget rejected these API keys: Apikey does not exist (code 40037)"
    assert error["details"]["api_key"] == [error["message"]]
    assert not ExchangeAccount.objects.exists()
    assert bitget.sent, "the keys were checked through ccxt's HTTP layer"
    assert _no_secret_in(response.content.decode(), caplog.text)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "why"),
    [
        ("down", "bitget did not answer in time"),
        ("busy", "bitget is unavailable (maintenance or overload)"),
    ],
)
def test_an_unreachable_exchange_saves_the_account_unverified_and_shows_it(
    auth_client, bitget, settings, state, why
):
    # given
    bitget.state = state
    settings.EXCHANGE_KEY_CHECK_TIMEOUT_SECONDS = 3
    # when
    response = auth_client.post(LIST, LIVE, format="json")
    # then: saved, marked unverified with why; the check waited no longer than its timeout
    assert response.status_code == 201
    body = response.json()
    assert (body["verification"], body["verified_at"]) == ("unverified", None)
    assert body["verification_error"] == why
    assert bitget.timeouts
    assert all(t == 3 for t in bitget.timeouts)
    # and the list and the account say so too
    listed = auth_client.get(LIST).json()["results"]
    assert [a["verification"] for a in listed] == ["unverified"]
    assert auth_client.get(f"{LIST}/{body['id']}").json()["verification"] == "unverified"


@pytest.mark.django_db
def test_a_paper_account_asks_the_exchange_nothing(auth_client, monkeypatch):
    block_network(monkeypatch)
    response = auth_client.post(
        LIST, {"exchange": "bitget", "label": "Paper", "mode": "paper"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["verification"] == "not_needed"


@pytest.mark.django_db
def test_a_duplicate_label_is_refused_before_the_exchange_is_asked(auth_client, bitget):
    assert auth_client.post(LIST, LIVE, format="json").status_code == 201
    asked = len(bitget.sent)
    response = auth_client.post(LIST, LIVE, format="json")
    assert response.status_code == 409
    assert len(bitget.sent) == asked


# --- the page and the admin ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_the_exchanges_refusal_on_the_form_and_saves_nothing(client, user, bitget):
    # given
    bitget.state = "rejecting"
    client.force_login(user)
    # when
    response = client.post(PAGE, LIVE)
    # then
    assert response.status_code == 400
    page = response.content.decode()
    assert "Bitget rejected these API keys: Apikey does not exist (code 40037)" in page
    assert not ExchangeAccount.objects.exists()
    assert _no_secret_in(page)


@pytest.mark.django_db
def test_the_page_saves_an_unreachable_exchanges_account_marked_unverified(client, user, bitget):
    # given
    bitget.state = "down"
    client.force_login(user)
    # when
    response = client.post(PAGE, LIVE, follow=True)
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "added, unverified: bitget did not answer in time" in page
    assert 'class="badge unverified verification"' in page
    assert ExchangeAccount.objects.get(user=user).verification == "unverified"


@pytest.mark.django_db
def test_the_page_marks_verified_keys(client, user, bitget):
    client.force_login(user)
    page = client.post(PAGE, LIVE, follow=True).content.decode()
    assert "keys verified" in page
    assert "unverified" not in page


@pytest.mark.django_db
def test_the_admin_shows_whether_the_keys_are_verified(client, exchange_account_factory):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    account = exchange_account_factory(
        mode="live", label="Unchecked", api_key="k-12345678", api_secret="s", passphrase="p",
        verification_error="bitget did not answer in time",
    )  # fmt: skip
    client.force_login(staff)
    listing = client.get("/admin/markets/exchangeaccount/").content.decode()
    assert "unverified: bitget did not answer in time" in listing
    detail = client.get(f"/admin/markets/exchangeaccount/{account.pk}/change/").content.decode()
    assert "unverified: bitget did not answer in time" in detail


# --- checking again -----------------------------------------------------------------------------


def _unverified(factory: Any, **fields: Any) -> ExchangeAccount:
    return factory(
        mode="live", api_key=LIVE["api_key"], api_secret=LIVE["api_secret"],
        passphrase=LIVE["passphrase"], verification_error="could not reach bitget", **fields,
    )  # fmt: skip


@pytest.mark.django_db
def test_checking_again_verifies_keys_the_exchange_now_accepts(exchange_account_factory, bitget):
    account = _unverified(exchange_account_factory)
    exchange_account_verify(account=account)
    account.refresh_from_db()
    assert (account.verification, account.verification_error) == ("verified", "")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "code", "status"),
    [("rejecting", "exchange_auth_failed", 400), ("down", "exchange_unreachable", 503)],
)
def test_checking_again_refuses_clearly_when_the_keys_cannot_be_verified(
    exchange_account_factory, bitget, state, code, status
):
    bitget.state = state
    account = _unverified(exchange_account_factory)
    with pytest.raises(AppError) as caught:
        exchange_account_verify(account=account)
    assert (caught.value.code, caught.value.status) == (code, status)
    account.refresh_from_db()
    assert account.verification == "unverified"
    assert account.verification_error


@pytest.mark.django_db
def test_staff_can_check_an_unverified_accounts_keys_again(
    staff_client, exchange_account_factory, bitget
):
    from tests.admin_helpers import run_admin_action, shown_messages

    # given: an account saved while Bitget could not be reached, which answers now
    account = _unverified(exchange_account_factory, label="Later")
    # when
    response = run_admin_action(
        staff_client, "/admin/markets/exchangeaccount/", "verify_keys", [account]
    )
    # then
    account.refresh_from_db()
    assert account.verification == "verified"
    assert any("keys verified" in message for message in shown_messages(response))
    assert _no_secret_in(response.content.decode())
