"""Live money: a live bot starts only when confirmed (and on keys the exchange accepts), shows
"degraded" while its exchange keeps failing, and stops within one tick interval even when the
exchange is down, saying who stopped it and which orders it could not cancel.

The exchange is Bitget at the HTTP layer (``BitgetAccount``): ccxt's own request, signing and
error handling run above it.
"""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from bots.events import bot_snapshot
from bots.models import Bot, BotEvent, Order
from bots.order_ids import client_order_id
from bots.services import (
    BotConfig,
    bot_create,
    bot_start,
    bot_stop,
    bot_tick,
    bots_dispatch,
    bots_kill,
)
from bots.services.events import BotUpdates
from bots.services.lease import lease_claim
from bots.services.ticks import tick_claimed
from markets.models import ExchangeAccount
from markets.timeframes import timeframe_ms
from tests.admin_helpers import run_admin_action, shown_messages
from tests.backtests.worker_helpers import group_listener  # noqa: F401 - a fixture
from tests.bots.bot_helpers import STEP_MS, SYMBOL, TIMEFRAME, ManualClock, Scripted, paper_account
from tests.markets.ccxt_replay import BitgetAccount

pytestmark = pytest.mark.usefixtures("scripted_strategies")

KEY, SECRET, PASSPHRASE = "bg-live-key-SAFE0001", "bg-live-secret-SAFE0002", "bg-pass-SAFE0003"


@pytest.fixture
def bitget(monkeypatch: pytest.MonkeyPatch, settings: Any) -> BitgetAccount:
    settings.BOT_CANDLE_WINDOW = 50  # every candle the bot reads is stored: no candle request
    return BitgetAccount().install(monkeypatch)


def live_account(user: Any, *, verified: bool = True) -> ExchangeAccount:
    return ExchangeAccount.objects.create(
        user=user, exchange="bitget", label="Bitget main", mode="live", api_key=KEY,
        api_secret=SECRET, passphrase=PASSPHRASE,
        verified_at=timezone.now() if verified else None,
        verification_error="" if verified else "bitget did not answer in time",
    )  # fmt: skip


def new_bot(user: Any, account: ExchangeAccount) -> Bot:
    config = BotConfig(
        name="live one", exchange_account=account, symbol=SYMBOL, timeframe=TIMEFRAME,
        strategy=Scripted.key, params={},
    )  # fmt: skip
    return bot_create(user=user, config=config)


def live_clock(rows: list[Any]) -> ManualClock:
    """A second after the last stored candle closed."""
    return ManualClock((rows[-1].open_time + STEP_MS) / 1000 + 1)


def running_live_bot(user: Any) -> Bot:
    return bot_start(bot=new_bot(user, live_account(user)), confirm_live=True)


# --- starting: confirmation and the keys checked again ------------------------------------------


def test_the_api_refuses_to_start_a_live_bot_without_confirm_live(auth_client, user, bitget):
    # given
    bot = new_bot(user, live_account(user))
    # when
    response = auth_client.post(f"/api/bots/{bot.pk}/start", {}, format="json")
    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "confirm_live_required"
    assert "real money" in error["message"]
    assert "confirm_live" in error["details"]
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.STOPPED
    assert not bitget.sent


def test_the_api_starts_a_live_bot_with_confirm_live(auth_client, user, bitget):
    bot = new_bot(user, live_account(user))
    response = auth_client.post(f"/api/bots/{bot.pk}/start", {"confirm_live": True}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert "with real money" in bot.events.get(kind="started").message


def test_a_paper_bot_starts_without_confirmation(auth_client, user, rows):
    bot = new_bot(user, paper_account(user))
    response = auth_client.post(f"/api/bots/{bot.pk}/start", format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "running"


@pytest.mark.parametrize(
    ("state", "status", "code", "words"),
    [
        ("rejecting", 400, "exchange_auth_failed", "Bitget rejected these API keys"),
        ("down", 503, "exchange_unreachable", "is unreachable, cannot verify the API keys"),
    ],
)
def test_starting_on_an_unverified_account_checks_the_keys_and_refuses_clearly(
    auth_client, user, bitget, state, status, code, words
):
    # given: an account saved while the exchange could not be reached
    bot = new_bot(user, live_account(user, verified=False))
    bitget.state = state
    # when
    response = auth_client.post(f"/api/bots/{bot.pk}/start", {"confirm_live": True}, format="json")
    # then
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert words in response.json()["error"]["message"]
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.STOPPED
    assert bitget.sent, "the keys were checked at the exchange"


def test_starting_on_an_unverified_account_verifies_keys_the_exchange_accepts(
    auth_client, user, bitget
):
    account = live_account(user, verified=False)
    bot = new_bot(user, account)
    response = auth_client.post(f"/api/bots/{bot.pk}/start", {"confirm_live": True}, format="json")
    assert response.status_code == 200
    account.refresh_from_db()
    assert account.verification == "verified"


def test_the_page_asks_for_confirmation_before_starting_a_live_bot(trader_client, user, bitget):
    # given
    bot = new_bot(user, live_account(user))
    # when: the Start button is pressed
    response = trader_client.post(f"/bots/{bot.pk}/start/")
    # then: a confirmation naming the account and the market, and the bot still stopped
    assert response.status_code == 200
    page = response.content.decode()
    assert "with real money?" in page
    assert "Bitget main" in page
    assert f"{SYMBOL} {TIMEFRAME}" in page
    assert 'name="confirm_live"' in page
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.STOPPED
    # when: confirmed
    confirmed = trader_client.post(f"/bots/{bot.pk}/start/", {"confirm_live": "on"})
    # then
    assert confirmed.status_code == 302
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.RUNNING


# --- degraded while the exchange keeps failing ------------------------------------------------


def test_a_bot_whose_exchange_keeps_failing_is_degraded_everywhere_until_a_good_tick(
    user, rows, bitget, settings, trader_client, auth_client, group_listener,  # noqa: F811
    django_capture_on_commit_callbacks,
):  # fmt: skip
    # given: a running live bot, and an exchange that stops answering
    settings.BOT_DEGRADED_AFTER_FAILURES = 3
    bot = running_live_bot(user)
    clock = live_clock(rows)
    Scripted.target = 0
    bitget.state = "down"
    group_listener.join(f"bot-{bot.pk}")

    # when: two ticks fail, it is still "running"
    for _ in range(2):
        assert bot_tick(bot_id=bot.pk, clock=clock).outcome == "retry"
    assert auth_client.get(f"/api/bots/{bot.pk}").json()["state"] == "running"
    # and the third makes it degraded, announced once
    with django_capture_on_commit_callbacks(execute=True):
        assert bot_tick(bot_id=bot.pk, clock=clock).outcome == "retry"

    # then: the API, the pages and the live updates say "degraded", with the reason
    body = auth_client.get(f"/api/bots/{bot.pk}").json()
    assert (body["status"], body["state"], body["health"]) == ("running", "degraded", "degraded")
    assert body["health_reason"] == "bitget did not answer in time"
    for url in ("/bots/", f"/bots/{bot.pk}/", "/dashboard/"):
        page = trader_client.get(url).content.decode()
        assert 'class="badge degraded' in page, url
        assert "Degraded" in page, url
        assert "bitget did not answer in time" in page, url
    snapshot = bot_snapshot(user=user, pk=bot.pk)
    assert (snapshot["state"], snapshot["health"]) == ("degraded", "degraded")
    assert snapshot["health_reason"] == "bitget did not answer in time"
    statuses = _published(group_listener, "bot.status")
    assert [s["state"] for s in statuses] == ["degraded"]
    assert statuses[0]["health_reason"] == "bitget did not answer in time"
    assert Bot.objects.get(pk=bot.pk).events.filter(kind="degraded").count() == 1

    # when: the exchange answers again
    bitget.state = "accepting"
    with django_capture_on_commit_callbacks(execute=True):
        assert bot_tick(bot_id=bot.pk, clock=clock).outcome == "held"

    # then: healthy again, with a line in its log and a live update
    body = auth_client.get(f"/api/bots/{bot.pk}").json()
    assert (body["state"], body["health"], body["health_reason"]) == ("running", "ok", "")
    recovered = Bot.objects.get(pk=bot.pk).events.get(kind="exchange_recovered")
    assert recovered.message == "The exchange answers again; trading resumed (no longer degraded)."
    assert [s["state"] for s in _published(group_listener, "bot.status")] == ["running"]
    assert 'class="badge degraded' not in trader_client.get("/bots/").content.decode()


def _published(listener: Any, kind: str) -> list[dict[str, Any]]:
    messages = listener.receive(seconds=1)
    events = [e for m in messages for e in (m.get("events") or [m["event"]])]
    return [e["data"] for e in events if e["type"] == kind]


# --- stopping when the exchange is down --------------------------------------------------------


def _open_order(bot: Bot, rows: list[Any]) -> Order:
    candle_ms = rows[-1].open_time
    return Order.objects.create(
        bot=bot, client_order_id=client_order_id(bot.pk, candle_ms, "buy"),
        exchange_order_id="1234567890", symbol=SYMBOL, side="buy", order_type="limit",
        price=Decimal("60000"), qty=Decimal("0.001"), status=Order.Status.OPEN, reason="signal",
        candle_ms=candle_ms,
    )  # fmt: skip


def test_a_staff_stop_of_a_live_bot_with_the_exchange_down_reaches_stopped_at_once(
    user, staff, staff_client, trader_client, rows, bitget, settings
):
    # given: a live bot with an open order, backing off after many failed ticks (next try in
    # five minutes, as in the report), and an exchange that does not answer
    settings.BOT_STOP_EXCHANGE_TIMEOUT_SECONDS = 2
    bot = running_live_bot(user)
    order = _open_order(bot, rows)
    later = timezone.now() + timedelta(seconds=300)
    Bot.objects.filter(pk=bot.pk).update(error_streak=8, next_tick_at=later)
    bitget.state = "down"
    asked = len(bitget.sent)

    # when: staff use "Stop selected bots"
    started = time.monotonic()
    response = run_admin_action(staff_client, "/admin/bots/bot/", "stop_bots", [bot])
    took = time.monotonic() - started

    # then: stopped within one tick interval, having asked the exchange once, briefly
    bot.refresh_from_db()
    assert bot.status == Bot.Status.STOPPED
    assert took < timeframe_ms(bot.timeframe) / 1000
    # (ccxt probes once per client whether the account is a unified one, and goes on)
    tried = [r.url for r in bitget.sent[asked:] if "/api/v3/account/settings" not in r.url]
    assert tried == [
        f"https://api.bitget.com/api/v2/spot/trade/orderInfo?clientOid={order.client_order_id}"
    ]
    assert set(bitget.timeouts[asked:]) == {2}
    # and the order it could not cancel is listed as such, in the log and on the bot's page
    reason = f"could not cancel order {order.client_order_id}: exchange unreachable"
    failed = bot.events.get(kind="cancel_failed")
    assert (failed.message, failed.level) == (reason, BotEvent.Level.WARNING)
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN
    assert order.error == "could not cancel: exchange unreachable"
    assert reason in trader_client.get(f"/bots/{bot.pk}/").content.decode()
    assert "live one: stopped, but could not cancel 1 order(s) (see its events)." in (
        shown_messages(response)
    )
    # and the trader's log says who stopped it
    stopped = bot.events.get(kind="stopped")
    assert stopped.message == (
        f"Stopped by staff member {staff.email}; could not cancel 1 order(s): exchange unreachable."
    )
    assert stopped.data == {
        "by": f"staff member {staff.email}",
        "uncancelled": [order.client_order_id],
    }


def test_a_stop_asked_while_a_failing_tick_holds_the_bot_is_due_at_once_not_after_backoff(
    user, rows, bitget
):
    # given: a running live bot whose tick is under way while the exchange is down
    bot = running_live_bot(user)
    Bot.objects.filter(pk=bot.pk).update(error_streak=8)
    holding = Bot.objects.select_related("exchange_account", "user").get(pk=bot.pk)
    token = lease_claim(bot.pk)
    assert token is not None
    bitget.state = "down"
    clock = live_clock(rows)

    # when: the trader stops it (the tick holds it), then the holding tick fails
    assert bot_stop(bot=Bot.objects.get(pk=bot.pk), by=user).status == Bot.Status.STOPPING
    before = timezone.now()
    assert tick_claimed(holding, token, clock, BotUpdates()).outcome == "retry"

    # then: the stop is due at once, not after the backoff, and the next tick stops the bot
    bot.refresh_from_db()
    assert bot.status == Bot.Status.STOPPING
    assert bot.next_tick_at is not None
    assert bot.next_tick_at <= before + timedelta(seconds=1)
    assert bot.events.get(kind="stop_requested").message == (
        "Stop asked by the trader; the tick in progress carries it out."
    )
    assert bot_tick(bot_id=bot.pk, clock=clock).outcome == "stopped"
    bot.refresh_from_db()
    assert bot.status == Bot.Status.STOPPED
    assert bot.events.get(kind="stopped").message.startswith("Stopped by the trader;")


def test_a_trader_stop_through_the_api_says_the_trader_stopped_it(auth_client, user, bitget):
    bot = running_live_bot(user)
    response = auth_client.post(f"/api/bots/{bot.pk}/stop", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "stopped"
    stopped = Bot.objects.get(pk=bot.pk).events.get(kind="stopped")
    assert stopped.message == "Stopped by the trader: open orders cancelled."


def test_the_kill_switch_stops_a_live_bot_with_the_exchange_down_on_its_next_dispatch(
    user, staff, rows, bitget
):
    # given: a live bot with an open order, backing off, and the exchange down
    bot = running_live_bot(user)
    order = _open_order(bot, rows)
    Bot.objects.filter(pk=bot.pk).update(
        error_streak=8, next_tick_at=timezone.now() + timedelta(seconds=300)
    )
    bitget.state = "down"

    # when: staff pull the kill switch, and the dispatcher runs its ticks
    assert bots_kill(by=staff) == 1
    ticked: list[Any] = []
    bots_dispatch(send=lambda ids: ticked.extend(bot_tick(bot_id=pk) for pk in ids))

    # then: the first dispatch stopped it, and its log says who asked and what was left open
    assert [result.outcome for result in ticked] == ["stopped"]
    bot.refresh_from_db()
    assert bot.status == Bot.Status.STOPPED
    who = f"staff member {staff.email} (kill switch)"
    assert bot.events.get(kind="killed").message == f"Stop asked by {who}."
    assert bot.events.get(kind="stopped").message == (
        f"Stopped by {who}; could not cancel 1 order(s): exchange unreachable."
    )
    assert bot.events.filter(
        kind="cancel_failed", data__client_order_id=order.client_order_id
    ).exists()
