"""The accounts admin, through the Django test client: disabling a user (their bots stop, their
tokens, sessions and live sockets end, all of it in the audit trail), enabling them again, and no
secret of an exchange account or an API token on any page.

Bots trade on the replayed sample with a clock that starts at the real time, as in
``tests/bots/test_bot_admin.py``: a bot's own next tick (run here by hand, as the dispatcher
would within a second) carries out the stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.models import ApiToken, User
from accounts.services import api_token_issue, user_disable
from bots import services as bot_services
from bots.models import Bot
from markets import services as market_services
from markets.models import ExchangeAccount
from strategies.services import strategy_catalogue_sync
from tests.admin_helpers import check_pages, shown_messages
from tests.bots.bot_helpers import paper_account, replay_bot, statuses, store_candles
from tests.factories import UserFactory
from tests.markets.test_exchange_accounts import raw_row
from tradingbot.asgi import application
from tradingbot.errors import AppError
from tradingbot.live import protocol

ADMIN = "/admin/accounts"
FIRST, COUNT = 2000, 300
SPEED = 600.0  # candles a minute, from the real time: the stopping tick lands on stored candles
API_KEY, API_SECRET, PASSPHRASE = "key-AAAA1111bbbb", "secret-ZZZZ9999yyyy", "phrase-QQQQ7777"
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture
def rows(db: Any) -> list[Any]:
    strategy_catalogue_sync()
    return store_candles(FIRST, COUNT)


def running_bot(user: User, rows: list[Any], name: str) -> Bot:
    account = ExchangeAccount.objects.filter(user=user, label="Paper").first()
    runner = replay_bot(
        user, account or paper_account(user), start_ms=rows[0].open_time, speed=SPEED, name=name
    )
    runner.clock.now = time.time()
    return runner.start()


def run_action(client: Client, action: str, users: list[User]) -> Any:
    return client.post(
        f"{ADMIN}/user/",
        {"action": action, "_selected_action": [user.pk for user in users], "index": 0},
        follow=True,
    )


def entries(obj: Any) -> list[str]:
    return list(
        LogEntry.objects.filter(
            object_id=str(obj.pk), content_type__model=obj._meta.model_name, action_flag=CHANGE
        )
        .order_by("id")
        .values_list("change_message", flat=True)
    )


def user_sessions(user: User) -> list[str]:
    return [
        session.session_key
        for session in Session.objects.all()
        if session.get_decoded().get("_auth_user_id") == str(user.pk)
    ]


def browser_of(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def socket_headers(browser: Client) -> list[Any]:
    return [(b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode()), ORIGIN]


async def open_socket(headers: list[Any]) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, "/ws/", headers=headers)
    accepted, _ = await socket.connect()
    assert accepted
    assert (await socket.receive_json_from(timeout=5))["type"] == "auth.ok"
    return socket


async def open_token_socket(key: str) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, "/ws/")
    accepted, _ = await socket.connect()
    assert accepted
    await socket.send_json_to({"type": "auth", "token": key})
    assert (await socket.receive_json_from(timeout=5))["type"] == "auth.ok"
    return socket


async def closed_as_signed_out(socket: WebsocketCommunicator) -> None:
    """The socket is told it was signed out, then closed with 4401 (the bots' stop events,
    published in the same commit, may come first)."""
    message = await socket.receive_json_from(timeout=5)
    while message["type"] != "error":
        assert message["type"].startswith("bot."), message
        message = await socket.receive_json_from(timeout=5)
    assert message["code"] == "session_ended"
    assert (await socket.receive_output(timeout=5))["code"] == protocol.CLOSE_UNAUTHENTICATED


def api_status(key: str) -> int:
    return Client().get("/api/auth/me", HTTP_AUTHORIZATION=f"Token {key}").status_code


# --- disabling, end to end ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_disabling_a_user_stops_their_bots_and_ends_every_way_in(staff, rows, caplog):
    # given: a trader with two running bots, an API token, a signed-in browser and two live
    # sockets (one by the session, one by the token); and another trader who must not notice
    trader, bystander = UserFactory(), UserFactory()
    bots = [running_bot(trader, rows, "one"), running_bot(trader, rows, "two")]
    theirs = running_bot(bystander, rows, "theirs")
    key = api_token_issue(user=trader).key
    bystander_key = api_token_issue(user=bystander).key
    browser, bystander_browser = browser_of(trader), browser_of(bystander)
    staff_client = Client()
    staff_client.force_login(staff)
    caplog.set_level(logging.INFO, logger="accounts.services")

    async def scenario() -> Any:
        by_session = await open_socket(socket_headers(browser))
        by_token = await open_token_socket(key)
        bystanders = await open_socket(socket_headers(bystander_browser))
        # when: staff disable the trader from the user list
        response = await asyncio.to_thread(run_action, staff_client, "disable_users", [trader])
        # then: both of the trader's sockets are closed as signed out; the bystander's is not
        await closed_as_signed_out(by_session)
        await closed_as_signed_out(by_token)
        await bystanders.send_json_to({"type": "ping"})
        assert await bystanders.receive_json_from(timeout=5) == {"type": "pong"}
        await bystanders.disconnect()
        return response

    response = async_to_sync(scenario)()

    assert shown_messages(response) == ["1 user(s) disabled; their bots are stopping."]
    trader.refresh_from_db()
    assert trader.is_active is False
    # the bots decide nothing more, and their own next tick stops them
    assert statuses(*bots, theirs) == ["stopping", "stopping", "running"]
    for bot in bots:
        bot_services.bot_tick(bot_id=bot.pk)
    assert statuses(*bots, theirs) == ["stopped", "stopped", "running"]
    # the token is gone and refused; the browser is signed out
    assert not ApiToken.objects.filter(user=trader).exists()
    assert api_status(key) == 401
    assert user_sessions(trader) == []
    page = browser.get("/dashboard/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")
    # the bystander keeps everything
    assert api_status(bystander_key) == 200
    assert bystander_browser.get("/dashboard/").status_code == 200
    # the audit trail: the user, and each bot stopped, by this staff member
    assert entries(trader) == [
        "Disabled (admin action): 2 bot(s) stopping, 1 API token(s) revoked, 1 session(s) ended."
    ]
    for bot in bots:
        assert entries(bot) == [f"Stopped: its owner {trader.email} was disabled."]
        assert bot.events.filter(kind="killed", message__contains=staff.email).exists()
    assert entries(theirs) == []
    assert set(LogEntry.objects.values_list("user_id", flat=True)) == {staff.pk}
    [line] = [r for r in caplog.records if r.getMessage() == "user.disabled"]
    assert (line.user_id, line.by_user_id, line.bots_stopped) == (trader.pk, staff.pk, 2)


# --- disabling: refusals and the other ways in --------------------------------------------------


def test_staff_cannot_disable_themselves(staff_client, staff):
    response = run_action(staff_client, "disable_users", [staff])

    assert shown_messages(response) == [f"{staff.email}: You cannot disable your own account."]
    staff.refresh_from_db()
    assert staff.is_active
    assert not LogEntry.objects.exists()
    # and their own page does not offer the box either
    page = staff_client.get(f"{ADMIN}/user/{staff.pk}/change/").content.decode()
    assert 'name="is_active"' not in page


def test_the_service_refuses_a_self_disable_too(staff):
    with pytest.raises(AppError, match="own account"):
        user_disable(user=staff, by=staff)
    staff.refresh_from_db()
    assert staff.is_active


def test_a_trader_who_is_not_staff_cannot_disable_anyone(user, other_user):
    client = browser_of(user)

    for response in (
        client.get(f"{ADMIN}/user/"),
        client.post(
            f"{ADMIN}/user/",
            {"action": "disable_users", "_selected_action": [other_user.pk], "index": 0},
        ),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    other_user.refresh_from_db()
    assert other_user.is_active


def test_staff_who_may_only_view_users_get_no_disable_action(user):
    # given: staff who may view users but not change them
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    client = browser_of(viewer)

    # when: they list users and try the action anyway
    listing = client.get(f"{ADMIN}/user/").content.decode()
    client.post(
        f"{ADMIN}/user/", {"action": "disable_users", "_selected_action": [user.pk], "index": 0}
    )

    # then
    assert user.email in listing
    assert "disable_users" not in listing
    assert "enable_users" not in listing
    user.refresh_from_db()
    assert user.is_active


def test_unticking_active_on_the_users_page_disables_them_as_the_action_does(
    staff_client, staff, rows
):
    trader = UserFactory(display_name="Trader")
    bot = running_bot(trader, rows, "one")
    key = api_token_issue(user=trader).key
    browser = browser_of(trader)

    response = staff_client.post(
        f"{ADMIN}/user/{trader.pk}/change/",
        # "active" unticked
        {"email": trader.email, "display_name": "Trader", "time_zone": "UTC", "_save": "Save"},
    )

    assert response.status_code == 302
    trader.refresh_from_db()
    assert not trader.is_active
    assert statuses(bot) == ["stopping"]
    assert entries(bot) == [f"Stopped: its owner {trader.email} was disabled."]
    assert api_status(key) == 401
    assert browser.get("/dashboard/").status_code == 302
    [changed] = entries(trader)  # Django's own entry for the edit
    assert "changed" in changed


def test_enabling_lets_them_in_again_with_their_bots_stopped_and_old_tokens_revoked(
    staff_client, staff, rows
):
    # given: a disabled trader whose bot has stopped
    trader = UserFactory()
    bot = running_bot(trader, rows, "one")
    old_key = api_token_issue(user=trader).key
    run_action(staff_client, "disable_users", [trader])
    bot_services.bot_tick(bot_id=bot.pk)

    # when
    response = run_action(staff_client, "enable_users", [trader])

    # then
    assert shown_messages(response) == [
        "1 user(s) enabled; their bots stay stopped until they start them."
    ]
    trader.refresh_from_db()
    assert trader.is_active
    assert statuses(bot) == ["stopped"]
    assert api_status(old_key) == 401
    assert api_status(api_token_issue(user=trader).key) == 200
    assert entries(trader)[-1] == "Enabled (admin action)."


def test_enabling_an_active_user_changes_and_logs_nothing(staff_client, user):
    response = run_action(staff_client, "enable_users", [user])

    assert shown_messages(response) == ["The selected users were active already."]
    assert entries(user) == []


def test_the_user_list_counts_active_bots_and_links_a_users_things(staff_client, rows):
    trader = UserFactory(email="counted@example.com")
    running_bot(trader, rows, "one")
    running_bot(trader, rows, "two")

    listing = staff_client.get(f"{ADMIN}/user/", {"q": "counted"})
    page = staff_client.get(f"{ADMIN}/user/{trader.pk}/change/").content.decode()

    [row] = listing.context["cl"].result_list
    assert row.active_bot_count == 2
    assert f"/admin/bots/bot/?user__id__exact={trader.pk}" in page
    assert f"/admin/accounts/apitoken/?user__id__exact={trader.pk}" in page


# --- tokens -------------------------------------------------------------------------------------


def test_deleting_a_token_in_the_admin_revokes_it_and_is_logged(staff_client, user):
    issued = api_token_issue(user=user)
    url = f"{ADMIN}/apitoken/{issued.token.pk}/delete/"

    assert staff_client.post(url, {"post": "yes"}).status_code == 302

    assert api_status(issued.key) == 401
    assert LogEntry.objects.filter(
        object_id=str(issued.token.pk), content_type__model="apitoken"
    ).exists()
    assert staff_client.get(f"{ADMIN}/apitoken/add/").status_code == 403


# --- no secret on any page ----------------------------------------------------------------------


def test_no_secret_of_an_account_or_a_token_shows_on_any_page(staff_client, staff, user, rows):
    # given: a live account holding secrets, a token, and audit entries about this user
    account = market_services.exchange_account_open(
        user=user, exchange="bitget", label="Live", mode="live",
        api_key=API_KEY, api_secret=API_SECRET, passphrase=PASSPHRASE,
    )  # fmt: skip
    running_bot(user, rows, "one")
    run_action(staff_client, "disable_users", [user])
    issued = api_token_issue(user=user)  # after the disable, which revokes tokens
    token = issued.token
    stored = [value for value in raw_row(account.pk) if value]  # the ciphertexts
    assert len(stored) == 3
    secrets = (API_KEY, API_SECRET, PASSPHRASE, *stored, issued.key, token.key_hash)
    pages = {
        "/admin/markets/exchangeaccount/": [
            f"API key ••••{API_KEY[-4:]} · secret set · passphrase set"
        ],
        f"/admin/markets/exchangeaccount/{account.pk}/change/": ["secret set", "passphrase set"],
        f"/admin/markets/exchangeaccount/{account.pk}/history/": [],
        f"/admin/markets/exchangeaccount/{account.pk}/delete/": ["Live"],
        "/admin/markets/exchangeaccount/?q=Live": ["Live"],
        f"{ADMIN}/apitoken/": [user.email],
        f"{ADMIN}/apitoken/{token.pk}/change/": [user.email],
        f"{ADMIN}/apitoken/{token.pk}/history/": [],
        f"{ADMIN}/user/{user.pk}/change/": [user.email],
        f"{ADMIN}/user/{user.pk}/history/": ["Disabled (admin action)"],
        "/admin/admin/logentry/": ["Disabled (admin action)"],
        "/admin/": [],
    }

    check_pages(staff_client, pages, secrets=secrets)


def test_the_audit_trail_is_read_only(staff_client, staff, user):
    run_action(staff_client, "disable_users", [user])
    entry = LogEntry.objects.get(object_id=str(user.pk))

    assert staff_client.get(f"/admin/admin/logentry/{entry.pk}/change/").status_code == 200
    assert staff_client.post(f"/admin/admin/logentry/{entry.pk}/delete/", {"post": "yes"})\
        .status_code == 403  # fmt: skip
    assert staff_client.get("/admin/admin/logentry/add/").status_code == 403
    assert LogEntry.objects.filter(pk=entry.pk).exists()
    assert not LogEntry.objects.filter(action_flag=ADDITION).exists()


# --- the leverage cap ---------------------------------------------------------------------------


def test_staff_cap_a_traders_leverage_and_their_perp_bots_stay_under_it(
    staff_client: Any, db: Any
) -> None:
    # given: a trader, and staff setting a cap of 5 on the users page
    strategy_catalogue_sync()
    trader = UserFactory(display_name="Trader")
    form = {"email": trader.email, "display_name": "Trader", "time_zone": "UTC", "is_active": "on"}
    refused = staff_client.post(f"{ADMIN}/user/{trader.pk}/change/", {**form, "max_leverage": "0"})
    assert refused.status_code == 200  # shown again with the error
    response = staff_client.post(
        f"{ADMIN}/user/{trader.pk}/change/", {**form, "max_leverage": "5", "_save": "Save"}
    )
    assert response.status_code == 302
    trader.refresh_from_db()
    assert trader.max_leverage == 5
    # when: the trader asks for a perp bot at 6, then at 5
    api = Client()
    api.force_login(trader)
    body = {
        "name": "Lever", "exchange_account": paper_account(trader).pk, "symbol": "BTC/USDT:USDT",
        "timeframe": "5m", "strategy": "ma_cross", "params": {"fast": 5, "slow": 20},
        "order_size": {"fraction": 1}, "leverage": 6,
    }  # fmt: skip
    over = api.post("/api/bots", body, content_type="application/json")
    within = api.post("/api/bots", {**body, "leverage": 5}, content_type="application/json")
    # then: 6 is refused naming the cap; 5 is taken
    assert over.status_code == 400, over.content
    assert over.json()["error"]["details"]["leverage"] == [
        "Must be from 1 to 5: your account is capped at 5."
    ]
    assert within.status_code == 201, within.content
    assert Bot.objects.get(user=trader).leverage == 5
