from __future__ import annotations

import pytest
from django.db import connection

from markets.models import ExchangeAccount
from tests.markets.ccxt_replay import BitgetAccount

LIST = "/api/exchange-accounts"
LIVE = {
    "exchange": "bitget",
    "label": "Main",
    "mode": "live",
    "api_key": "bg_live_key_ABCDEF1234",
    "api_secret": "very-secret-value-5678",
    "passphrase": "my-passphrase-9999",
}


@pytest.fixture(autouse=True)
def _bitget_accepts_the_keys(monkeypatch):
    """A live account's keys are checked on save: Bitget (at the HTTP layer) accepts them."""
    BitgetAccount().install(monkeypatch)


def raw_row(pk):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key, api_secret, passphrase FROM exchange_accounts WHERE id = %s", [pk]
        )
        return cursor.fetchone()


@pytest.mark.django_db
def test_it_creates_a_live_account_and_never_returns_secrets(auth_client):
    # when
    response = auth_client.post(LIST, LIVE, format="json")
    # then
    assert response.status_code == 201
    body = response.json()
    assert body["api_key_masked"] == "••••1234"
    assert body["has_api_secret"] is True
    assert body["has_passphrase"] is True
    text = response.content.decode()
    for secret in (LIVE["api_key"], LIVE["api_secret"], LIVE["passphrase"]):
        assert secret not in text


@pytest.mark.django_db
def test_the_raw_row_holds_no_plaintext_secret(auth_client):
    pk = auth_client.post(LIST, LIVE, format="json").json()["id"]
    row = raw_row(pk)
    for stored, secret in zip(
        row, (LIVE["api_key"], LIVE["api_secret"], LIVE["passphrase"]), strict=True
    ):
        assert stored
        assert secret not in stored
        assert secret[-4:] not in stored
    account = ExchangeAccount.objects.get(pk=pk)
    assert account.api_secret.reveal() == LIVE["api_secret"]


@pytest.mark.django_db
def test_a_secret_prints_masked(exchange_account_factory):
    account = exchange_account_factory(
        mode="live", api_key="abcdefgh1234", api_secret="s3cr3t-value"
    )
    assert str(account.api_key) == "••••1234"
    assert "s3cr3t" not in repr(account.api_secret)
    assert "s3cr3t" not in f"{account.api_secret}"


@pytest.mark.django_db
def test_it_lists_only_the_users_own_accounts(
    auth_client, user, other_user, exchange_account_factory
):
    mine = exchange_account_factory(user=user, label="Mine")
    exchange_account_factory(user=other_user, label="Theirs")
    response = auth_client.get(LIST)
    assert response.status_code == 200
    assert [a["id"] for a in response.json()["results"]] == [mine.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "delete"])
def test_another_users_account_is_a_404(auth_client, other_user, exchange_account_factory, method):
    theirs = exchange_account_factory(user=other_user)
    response = getattr(auth_client, method)(f"{LIST}/{theirs.pk}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert ExchangeAccount.objects.filter(pk=theirs.pk).exists()


@pytest.mark.django_db
def test_it_deletes_the_users_account(auth_client, user, exchange_account_factory):
    mine = exchange_account_factory(user=user)
    assert auth_client.delete(f"{LIST}/{mine.pk}").status_code == 204
    assert not ExchangeAccount.objects.filter(pk=mine.pk).exists()
    assert auth_client.get(f"{LIST}/{mine.pk}").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"exchange": "binance"}, "exchange"),
        ({"exchange": 7}, "exchange"),
        ({"mode": "real"}, "mode"),
        ({"label": ""}, "label"),
        ({"label": "x" * 101}, "label"),
        ({"label": None}, "label"),
        ({"api_key": ""}, "api_key"),
        ({"api_secret": ""}, "api_secret"),
        ({"passphrase": ""}, "passphrase"),
        ({"api_key": {"nested": 1}}, "api_key"),
    ],
)
def test_it_rejects_bad_input_with_400_and_writes_nothing(auth_client, change, field):
    response = auth_client.post(LIST, {**LIVE, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert ExchangeAccount.objects.count() == 0


@pytest.mark.django_db
def test_a_paper_account_needs_no_keys(auth_client):
    response = auth_client.post(
        LIST, {"exchange": "bitget", "label": "Paper", "mode": "paper"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["api_key_masked"] == ""


@pytest.mark.django_db
def test_a_duplicate_label_is_a_409(auth_client):
    assert auth_client.post(LIST, LIVE, format="json").status_code == 201
    response = auth_client.post(LIST, LIVE, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate_label"
    assert ExchangeAccount.objects.count() == 1


@pytest.mark.django_db
def test_anonymous_clients_get_401(api_client):
    assert api_client.get(LIST).status_code == 401
    assert api_client.post(LIST, LIVE, format="json").status_code == 401


# --- pages ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_adds_an_account_and_shows_only_the_mask(client, user):
    client.force_login(user)
    response = client.post("/exchange-accounts/", LIVE, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "••••1234" in page
    for secret in (LIVE["api_key"], LIVE["api_secret"], LIVE["passphrase"]):
        assert secret not in page
    assert ExchangeAccount.objects.filter(user=user, label="Main").exists()


@pytest.mark.django_db
def test_the_page_shows_field_errors_and_writes_nothing(client, user):
    client.force_login(user)
    response = client.post("/exchange-accounts/", {**LIVE, "passphrase": ""})
    assert response.status_code == 400
    assert "Required for a live account." in response.content.decode()
    assert not ExchangeAccount.objects.exists()


@pytest.mark.django_db
def test_the_page_refuses_to_delete_another_users_account(
    client, user, other_user, exchange_account_factory
):
    theirs = exchange_account_factory(user=other_user)
    client.force_login(user)
    response = client.post(f"/exchange-accounts/{theirs.pk}/delete/")
    assert response.status_code == 404
    assert ExchangeAccount.objects.filter(pk=theirs.pk).exists()


@pytest.mark.django_db
def test_the_page_deletes_the_users_account(client, user, exchange_account_factory):
    mine = exchange_account_factory(user=user)
    client.force_login(user)
    response = client.post(f"/exchange-accounts/{mine.pk}/delete/")
    assert response.status_code == 302
    assert not ExchangeAccount.objects.filter(pk=mine.pk).exists()


@pytest.mark.django_db
def test_the_page_needs_a_login(client):
    response = client.get("/exchange-accounts/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- admin ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_shows_no_secret(client, exchange_account_factory):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    account = exchange_account_factory(
        **{k: v for k, v in LIVE.items() if k != "label"}, label="Adm"
    )
    client.force_login(staff)
    for url in (
        "/admin/markets/exchangeaccount/",
        f"/admin/markets/exchangeaccount/{account.pk}/change/",
    ):
        response = client.get(url)
        assert response.status_code == 200
        page = response.content.decode()
        assert "••••1234" in page
        for secret in (LIVE["api_key"], LIVE["api_secret"], LIVE["passphrase"]):
            assert secret not in page


@pytest.mark.django_db
def test_the_admin_lists_and_filters_users(client):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    UserFactory(email="findme@example.com")
    client.force_login(staff)
    response = client.get("/admin/accounts/user/", {"q": "findme"})
    assert response.status_code == 200
    assert "findme@example.com" in response.content.decode()
    assert client.get("/admin/accounts/user/add/").status_code == 200


@pytest.mark.django_db
def test_the_page_keeps_an_account_its_bots_trade_on_and_says_why(client, user):
    from strategies.services import strategy_catalogue_sync
    from tests.bots.bot_helpers import paper_account, replay_bot, store_candles

    strategy_catalogue_sync()
    rows = store_candles(0, 30)
    account = paper_account(user)
    replay_bot(user, account, start_ms=rows[0].open_time)
    client.force_login(user)
    response = client.post(f"/exchange-accounts/{account.pk}/delete/", follow=True)
    assert response.status_code == 200
    assert "Bots trade on this account" in response.content.decode()
    assert ExchangeAccount.objects.filter(pk=account.pk).exists()
