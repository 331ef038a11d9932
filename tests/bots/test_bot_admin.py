"""The bots admin, through the Django test client: read-only books, the stop actions, the kill
switches and their audit trail (admin ``LogEntry`` rows), and no exchange secret on any page.

Bots trade on the replayed sample with a ``ManualClock`` that starts at the real time: the
admin's stop runs a tick on the real clock, which must land on stored candles too.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client

from bots import services
from bots.models import Bot, BotEvent, Order, Position, Trade
from tests.admin_helpers import check_pages, run_admin_action, shown_messages
from tests.bots.bot_helpers import (
    API_KEY,
    API_SECRET,
    PASSPHRASE,
    SYMBOL,
    holding_bot,
    live_bot,
    paper_account,
    running_bot,
    statuses,
)
from tests.factories import UserFactory
from tests.markets.test_exchange_accounts import raw_row

ADMIN = "/admin/bots"


def run_action(client: Client, action: str, bots: list[Bot]) -> Any:
    return run_admin_action(client, f"{ADMIN}/bot/", action, bots)


def change_entries(bot: Bot) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(object_id=str(bot.pk), content_type__model="bot",
                                action_flag=CHANGE).order_by("id")
    )  # fmt: skip


# --- pages --------------------------------------------------------------------------------------


def test_a_trader_who_is_not_staff_is_sent_to_the_admin_login(client, user):
    client.force_login(user)
    for model in ("bot", "order", "trade", "position", "botevent"):
        response = client.get(f"{ADMIN}/{model}/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_every_list_and_page_renders_and_no_secret_shows(staff_client, user, rows):
    runner = holding_bot(user, paper_account(user), rows, "holder")
    live = live_bot(user)
    bot = runner.bot
    order, trade = Order.objects.filter(bot=bot).first(), Trade.objects.filter(bot=bot).first()
    position, event = Position.objects.get(bot=bot), BotEvent.objects.filter(bot=bot).first()
    assert order is not None
    assert trade is not None
    assert event is not None
    pages = {
        f"{ADMIN}/bot/": [bot.name, live.name, "Kill switch"],
        f"{ADMIN}/bot/{bot.pk}/change/": [bot.name, "ma_cross", f"bot__id__exact={bot.pk}"],
        f"{ADMIN}/bot/{live.pk}/change/": ["Live (bitget, live)"],
        f"{ADMIN}/bot/{bot.pk}/history/": [],
        f"{ADMIN}/bot/kill-switch/": ["Stop every bot"],
        f"{ADMIN}/order/": [order.client_order_id],
        f"{ADMIN}/order/{order.pk}/change/": [order.client_order_id],
        f"{ADMIN}/order/?q={order.client_order_id}": [order.client_order_id],
        f"{ADMIN}/trade/": [bot.name],
        f"{ADMIN}/trade/{trade.pk}/change/": [],
        f"{ADMIN}/position/": [bot.name],
        f"{ADMIN}/position/{position.pk}/change/": [],
        f"{ADMIN}/botevent/": [event.kind],
        f"{ADMIN}/botevent/{event.pk}/change/": [event.kind],
        f"{ADMIN}/bot/?q={user.email}": [bot.name],
        f"{ADMIN}/bot/?status__exact=running": [bot.name],
        f"/admin/markets/exchangeaccount/{live.exchange_account_id}/change/": ["Live"],
    }
    stored = [value for value in raw_row(live.exchange_account_id) if value]  # the ciphertexts
    assert len(stored) == 3
    check_pages(staff_client, pages, secrets=(API_KEY, API_SECRET, PASSPHRASE, *stored))


def test_the_bot_page_shows_its_position_and_links_to_its_books(staff_client, user, rows):
    runner = holding_bot(user, paper_account(user), rows, "holder")
    position = Position.objects.get(bot=runner.bot)

    html = staff_client.get(f"{ADMIN}/bot/{runner.bot.pk}/change/").content.decode()

    assert f"position {position.qty.normalize():f} {SYMBOL}" in html
    assert f"realised PnL {position.pnl.normalize():f}" in html
    assert f"/admin/bots/trade/?bot__id__exact={runner.bot.pk}" in html


def test_books_cannot_be_added_edited_or_deleted_by_hand(staff_client, user, rows):
    runner = holding_bot(user, paper_account(user), rows, "holder")
    order = Order.objects.filter(bot=runner.bot).first()
    assert order is not None

    assert staff_client.get(f"{ADMIN}/order/add/").status_code == 403
    assert staff_client.get(f"{ADMIN}/bot/add/").status_code == 403
    page = staff_client.get(f"{ADMIN}/order/{order.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    edited = staff_client.post(f"{ADMIN}/order/{order.pk}/change/", {"status": "canceled"})
    assert edited.status_code == 403
    deleted = staff_client.post(f"{ADMIN}/order/{order.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 403
    order.refresh_from_db()
    assert order.status == Order.Status.CLOSED


def test_an_active_bot_cannot_be_deleted_but_a_stopped_one_is_and_it_is_logged(
    staff_client, user, rows
):
    account = paper_account(user)
    active = running_bot(user, account, rows, "active").bot
    stopped = live_bot(user)

    refused = staff_client.post(
        f"{ADMIN}/bot/",
        {"action": "delete_selected", "_selected_action": [active.pk], "post": "yes"},
        follow=True,
    )
    assert "stop it first" in refused.content.decode()
    assert Bot.objects.filter(pk=active.pk).exists()

    run_action(staff_client, "delete_selected", [stopped])  # the confirmation page
    staff_client.post(
        f"{ADMIN}/bot/",
        {"action": "delete_selected", "_selected_action": [stopped.pk], "post": "yes"},
    )
    assert not Bot.objects.filter(pk=stopped.pk).exists()
    assert LogEntry.objects.filter(object_id=str(stopped.pk), action_flag=DELETION).exists()


# --- stop actions -------------------------------------------------------------------------------


def test_stop_selected_bots_stops_them_reports_and_logs(staff_client, staff, user, rows):
    account = paper_account(user)
    holder = holding_bot(user, account, rows, "holder").bot
    other = running_bot(user, account, rows, "other").bot
    already = live_bot(user)
    untouched = running_bot(user, account, rows, "untouched").bot

    response = run_action(staff_client, "stop_bots", [holder, other, already])

    assert statuses(holder, other, already, untouched) == ["stopped", "stopped", "stopped",
                                                           "running"]  # fmt: skip
    assert Position.objects.get(bot=holder).qty > 0  # not closed without flatten
    assert "2 bot(s) stopped." in shown_messages(response)
    assert "1 bot(s) were already stopped." in shown_messages(response)
    for bot in (holder, other):
        [entry] = change_entries(bot)
        assert entry.user_id == staff.pk
        assert entry.change_message == "Stopped (admin action); now stopped."
    assert change_entries(already) == change_entries(untouched) == []


def test_stop_and_close_positions_sells_the_position(staff_client, user, rows):
    holder = holding_bot(user, paper_account(user), rows, "holder").bot
    held = Position.objects.get(bot=holder).qty

    response = run_action(staff_client, "stop_bots_and_flatten", [holder])

    assert statuses(holder) == ["stopped"]
    assert Position.objects.get(bot=holder).qty == 0
    [sell] = Order.objects.filter(bot=holder, reason="stop")
    assert (sell.side, sell.status, sell.filled_qty) == ("sell", "closed", held)
    assert "1 bot(s) stopped." in shown_messages(response)
    [entry] = change_entries(holder)
    assert "close its position" in entry.change_message


def test_a_bot_whose_tick_holds_it_is_reported_as_still_stopping(staff_client, user, rows):
    bot = running_bot(user, paper_account(user), rows, "busy").bot
    # Another worker's tick holds the lease: the stop is left to it.
    Bot.objects.filter(pk=bot.pk).update(tick_lease_until="2999-01-01T00:00:00Z")

    response = run_action(staff_client, "stop_bots", [bot])

    assert statuses(bot) == ["stopping"]
    assert "1 bot(s) stopped (busy finishing: a tick held it)." in shown_messages(response)
    assert "now stopping" in change_entries(bot)[0].change_message


def test_stop_all_bots_of_the_selected_bots_users(staff_client, staff, user, other_user, rows):
    mine = paper_account(user)
    first = running_bot(user, mine, rows, "first").bot
    second = running_bot(user, mine, rows, "second").bot
    theirs = running_bot(other_user, paper_account(other_user), rows, "theirs").bot

    response = run_action(staff_client, "stop_users_bots", [first])

    assert statuses(first, second, theirs) == ["stopping", "stopping", "running"]
    assert f"Kill switch for {user.email}: 2 bot(s) stopping." in shown_messages(response)
    for bot in (first, second):
        [entry] = change_entries(bot)
        assert entry.change_message == f"Kill switch (all bots of {user.email})."
        assert entry.user_id == staff.pk
        assert bot.events.filter(kind="killed", message__contains=staff.email).exists()
    assert change_entries(theirs) == []
    # The bots' own next tick carries the stop out.
    services.bot_tick(bot_id=first.pk)
    assert statuses(first) == ["stopped"]


# --- the kill switch ----------------------------------------------------------------------------


def test_the_kill_switch_stops_every_bot_and_logs_it(staff_client, staff, user, other_user, rows):
    one = running_bot(user, paper_account(user), rows, "one").bot
    two = running_bot(other_user, paper_account(other_user), rows, "two").bot
    stopped = live_bot(user)

    confirm = staff_client.get(f"{ADMIN}/bot/kill-switch/")
    assert confirm.status_code == 200
    assert "2 bots are running, stopping or in error now" in confirm.content.decode()
    assert statuses(one, two) == ["running", "running"]  # a GET changes nothing

    response = staff_client.post(f"{ADMIN}/bot/kill-switch/", {"flatten": "on"}, follow=True)

    assert response.redirect_chain[-1][0] == f"{ADMIN}/bot/"
    assert "Kill switch: 2 bot(s) stopping." in shown_messages(response)
    assert statuses(one, two, stopped) == ["stopping", "stopping", "stopped"]
    assert list(Bot.objects.filter(pk__in=[one.pk, two.pk]).values_list("stop_flatten", flat=True))\
        == [True, True]  # fmt: skip
    for bot in (one, two):
        [entry] = change_entries(bot)
        assert entry.change_message == "Kill switch (all bots, closing positions)."
    summary = LogEntry.objects.get(object_repr="all bots")
    assert (summary.user_id, summary.object_id) == (staff.pk, None)
    assert summary.change_message == "Kill switch: 2 bot(s) stopping, closing positions."


def test_the_kill_switch_needs_staff_with_the_change_permission(client, user, rows):
    bot = running_bot(user, paper_account(user), rows, "safe").bot
    url = f"{ADMIN}/bot/kill-switch/"

    client.force_login(user)  # a trader
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")

    viewer = UserFactory(is_staff=True)  # staff who may only look at bots
    viewer.user_permissions.add(Permission.objects.get(codename="view_bot"))
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    assert client.get(url).status_code == 403
    listing = client.get(f"{ADMIN}/bot/").content.decode()
    assert "Kill switch" not in listing
    assert "stop_bots" not in listing  # no stop actions either

    assert statuses(bot) == ["running"]
    assert not LogEntry.objects.exists()


def test_the_kill_switch_is_csrf_protected(staff, user, rows):
    bot = running_bot(user, paper_account(user), rows, "safe").bot
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    assert client.post(f"{ADMIN}/bot/kill-switch/").status_code == 403
    assert statuses(bot) == ["running"]

    client.get(f"{ADMIN}/bot/kill-switch/")  # the confirmation page sets the token
    token = client.cookies["csrftoken"].value
    response = client.post(f"{ADMIN}/bot/kill-switch/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert statuses(bot) == ["stopping"]


def test_the_kill_switch_accepts_get_and_post_only(staff_client):
    assert staff_client.put(f"{ADMIN}/bot/kill-switch/").status_code == 405
