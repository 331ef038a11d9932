"""The live-updates consumer in process (``WebsocketCommunicator``) on the real channel layer.

The real daphne server, abrupt drops and floods are in ``test_live_server.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.services import api_token_issue, api_token_revoke
from backtests.models import Optimization
from bots.models import Bot
from markets.events import candles_group
from tests.backtests.worker_helpers import group_listener  # noqa: F401 - a fixture
from tests.bots.bot_helpers import EXCHANGE, SYMBOL, TIMEFRAME, paper_account, replay_bot
from tests.bots.bot_helpers import store_candles as store_sample_candles
from tradingbot.asgi import application
from tradingbot.events import object_event, object_groups, publish_now
from tradingbot.live import protocol
from tradingbot.redis import get_redis

pytestmark = pytest.mark.django_db(transaction=True)
QUIET_SECONDS = 0.5
FIRST_ROW = 2000


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


async def connected(token: str | None = None, headers: list[Any] | None = None) -> Any:
    socket = WebsocketCommunicator(application, "/ws/", headers=headers or [])
    accepted, _ = await socket.connect()
    assert accepted
    if token is not None:
        await socket.send_json_to({"type": "auth", "token": token})
        assert (await socket.receive_json_from())["type"] == "auth.ok"
    return socket


async def ask(socket: Any, message: dict[str, Any]) -> dict[str, Any]:
    await socket.send_json_to(message)
    return await socket.receive_json_from(timeout=5)


async def silent(socket: Any) -> bool:
    return await socket.receive_nothing(timeout=QUIET_SECONDS)


async def publish(groups: list[str], event: dict[str, Any]) -> None:
    await asyncio.to_thread(publish_now, groups, event)


def bot_event(bot: Bot, what: str, data: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    return (
        object_groups("bot", bot.pk, bot.user_id),
        object_event("bot", what, object_id=bot.pk, owner_id=bot.user_id, data=data),
    )


def token_of(user: Any) -> str:
    return api_token_issue(user=user).key


@pytest.fixture
def bot(user: Any) -> Bot:
    rows = store_sample_candles(FIRST_ROW, 5)
    return replay_bot(user, paper_account(user), start_ms=rows[0].open_time).bot


def test_it_authenticates_a_session_and_joins_the_users_group(user):
    # given: a logged-in browser's cookie and its own origin
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"cookie", cookie), (b"origin", b"http://127.0.0.1:8000")]

    async def scenario() -> None:
        socket = await connected(headers=headers)
        # then: it is in without sending anything
        assert await socket.receive_json_from() == {"type": "auth.ok", "user": user.pk}
        assert await ask(socket, {"type": "ping"}) == {"type": "pong"}
        await socket.disconnect()

    run(scenario)


def test_logging_out_closes_that_sessions_sockets_only(user):
    # given: two browsers of the same user, each with a live socket
    browsers = [Client(), Client()]
    for browser in browsers:
        browser.force_login(user)

    def headers(browser: Client) -> list[Any]:
        cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
        return [(b"cookie", cookie), (b"origin", b"http://127.0.0.1:8000")]

    async def scenario() -> None:
        leaving, staying = [await connected(headers=headers(b)) for b in browsers]
        for socket in (leaving, staying):
            assert (await socket.receive_json_from())["type"] == "auth.ok"
        # when: the first browser logs out
        response = await asyncio.to_thread(browsers[0].post, "/accounts/logout/")
        assert response.status_code == 302
        # then: its socket is told and closed; the other browser's is not
        assert (await leaving.receive_json_from(timeout=5))["code"] == "session_ended"
        assert (await leaving.receive_output(timeout=5))["code"] == protocol.CLOSE_UNAUTHENTICATED
        assert await ask(staying, {"type": "ping"}) == {"type": "pong"}
        await staying.disconnect()

    run(scenario)


def test_revoking_a_token_closes_its_sockets(user):
    issued = api_token_issue(user=user)

    async def scenario() -> None:
        socket = await connected(issued.key)
        await asyncio.to_thread(api_token_revoke, token=issued.token)
        assert (await socket.receive_json_from(timeout=5))["code"] == "session_ended"
        assert (await socket.receive_output(timeout=5))["code"] == protocol.CLOSE_UNAUTHENTICATED

    run(scenario)


def test_it_refuses_another_sites_page():
    async def scenario() -> None:
        socket = WebsocketCommunicator(
            application, "/ws/", headers=[(b"origin", b"http://evil.example.com")]
        )
        accepted, _ = await socket.connect()
        assert not accepted

    run(scenario)


def test_a_bad_token_is_refused_with_4401(user):
    async def scenario() -> None:
        socket = await connected()
        reply = await ask(socket, {"type": "auth", "token": "not-a-token"})
        assert reply["code"] == "auth_failed"
        assert (await socket.receive_output())["code"] == protocol.CLOSE_UNAUTHENTICATED

    run(scenario)


def test_a_silent_anonymous_connection_is_closed_with_4401(monkeypatch):
    monkeypatch.setattr(protocol, "AUTH_TIMEOUT_SECONDS", 0.2)

    async def scenario() -> None:
        socket = await connected()
        assert (await socket.receive_json_from(timeout=5))["code"] == "unauthenticated"
        assert (await socket.receive_output(timeout=5))["code"] == protocol.CLOSE_UNAUTHENTICATED

    run(scenario)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1009, "message_too_big"), (1007, "invalid_utf8"), (1002, "protocol_error")],
)
def test_a_close_by_the_servers_protocol_is_logged_once_as_a_fault(user, caplog, code, reason):
    # given: a connection the server's protocol ends (tradingbot.live.daphne_server reports the
    # code it closed with)
    token = token_of(user)

    async def scenario() -> None:
        socket = await connected(token)
        # when
        await socket.disconnect(code=code)

    with caplog.at_level(logging.INFO, logger="tradingbot.live"):
        run(scenario)
    # then
    [record] = [r for r in caplog.records if r.name == "tradingbot.live"]
    assert record.getMessage() == "ws.closed"
    assert record.levelno == logging.WARNING
    assert (record.code, record.reason) == (code, reason)


def test_a_bot_subscription_starts_with_a_snapshot(user, bot):
    token = token_of(user)

    async def scenario() -> None:
        socket = await connected(token)
        snapshot = await ask(socket, {"type": "subscribe", "channel": f"bot:{bot.pk}"})
        assert snapshot["type"] == "bot.snapshot"
        assert (snapshot["channel"], snapshot["id"]) == (f"bot:{bot.pk}", bot.pk)
        assert snapshot["data"]["status"] == Bot.Status.STOPPED
        assert snapshot["data"]["open_orders"] == []
        assert snapshot["data"]["symbol"] == SYMBOL
        await socket.disconnect()

    run(scenario)


def test_an_optimization_subscription_starts_with_its_progress_and_best_so_far(user):
    optimization = Optimization.objects.create(
        user=user, strategy_id="ma_cross", params={"ma": "sma"}, exchange="bitget",
        symbol="BTC/USDT", timeframe="5m", initial_cash=10_000, fee_rate="0.001",
        start="2024-01-01T00:00:00Z", end="2024-01-02T00:00:00Z", space={"fast": {"low": 3,
        "high": 9}}, objectives=[{"sharpe": 1.0}], sampler="tpe", trial_count=10,
        claimed_count=4, done_count=3, pruned_count=1, best_value=1.25,
        best_params={"fast": 5, "ma": "sma"}, status="running",
    )  # fmt: skip
    token = token_of(user)

    async def scenario() -> None:
        socket = await connected(token)
        channel = f"optimization:{optimization.pk}"
        snapshot = await ask(socket, {"type": "subscribe", "channel": channel})
        assert snapshot["type"] == "optimization.snapshot"
        assert snapshot["data"] == {
            "status": "running", "progress": 0.4, "done": 3, "pruned": 1, "failed": 0,
            "total": 10, "best_value": 1.25, "best_params": {"fast": 5, "ma": "sma"}, "error": "",
        }  # fmt: skip
        await socket.disconnect()

    run(scenario)


def test_another_users_objects_are_not_found_and_send_nothing(user, other_user, bot):
    token = token_of(other_user)
    channels = [
        f"bot:{bot.pk}", "bot:999999", "backtest:999999", "sweep:999999", "optimization:999999",
    ]  # fmt: skip

    async def scenario() -> None:
        socket = await connected(token)
        for channel in channels:
            reply = await ask(socket, {"type": "subscribe", "channel": channel})
            assert reply == {
                "type": "error", "code": "not_found", "channel": channel,
                "message": reply["message"],
            }  # fmt: skip
        # when: the owner's bot reports
        await publish(*bot_event(bot, "status", {"status": "running", "last_error": ""}))
        # then: nothing reaches the other user
        assert await silent(socket)
        await socket.disconnect()

    run(scenario)


def test_an_event_reaches_a_subscriber_and_a_dashboard_once_each(user, bot):
    token = token_of(user)

    async def scenario() -> None:
        subscriber = await connected(token)
        await ask(subscriber, {"type": "subscribe", "channel": f"bot:{bot.pk}"})
        dashboard = await connected(token)  # the user's group only
        # when
        await publish(*bot_event(bot, "status", {"status": "running", "last_error": ""}))
        # then: each gets it once, without the owner the server checked
        expected = {
            "type": "bot.status", "id": bot.pk, "channel": f"bot:{bot.pk}",
            "data": {"status": "running", "last_error": ""},
        }  # fmt: skip
        for socket in (subscriber, dashboard):
            assert await socket.receive_json_from(timeout=5) == expected
            assert await silent(socket)
            await socket.disconnect()

    run(scenario)


def test_a_batch_of_events_arrives_in_order(user, bot):
    token = token_of(user)
    groups = object_groups("bot", bot.pk, user.pk)
    batch = [
        (groups, object_event("bot", "event", object_id=bot.pk, owner_id=user.pk, data={"n": n}))
        for n in range(3)
    ]

    async def scenario() -> None:
        socket = await connected(token)
        await ask(socket, {"type": "subscribe", "channel": f"bot:{bot.pk}"})
        from tradingbot.events import publish_batch_now

        await asyncio.to_thread(publish_batch_now, batch)
        received = [await socket.receive_json_from(timeout=5) for _ in batch]
        assert [message["data"]["n"] for message in received] == [0, 1, 2]
        assert await silent(socket)
        await socket.disconnect()

    run(scenario)


def test_unsubscribing_stops_the_objects_group_but_not_the_users(user, bot):
    token = token_of(user)
    status = bot_event(bot, "status", {"status": "running", "last_error": ""})

    async def scenario() -> None:
        socket = await connected(token)
        channel = f"bot:{bot.pk}"
        await ask(socket, {"type": "subscribe", "channel": channel})
        assert await ask(socket, {"type": "unsubscribe", "channel": channel}) == {
            "type": "unsubscribed", "channel": channel,
        }  # fmt: skip
        await publish(*status)
        # then: still exactly once, through the user's group
        assert (await socket.receive_json_from(timeout=5))["type"] == "bot.status"
        assert await silent(socket)
        await socket.disconnect()

    run(scenario)


def test_candles_are_public_but_only_for_listed_markets_and_only_to_subscribers(user, other_user):
    store_sample_candles(FIRST_ROW, 5)
    channel = f"candles:{EXCHANGE}:{SYMBOL}:{TIMEFRAME}"
    closed = {
        "type": "candles.closed", "channel": channel, "owner": None,
        "data": {"exchange": EXCHANGE, "symbol": SYMBOL, "timeframe": TIMEFRAME,
                 "candle": [1, 1.0, 1.0, 1.0, 1.0, 1.0]},
    }  # fmt: skip
    tokens = token_of(user), token_of(other_user)

    async def scenario() -> None:
        watcher, bystander = await connected(tokens[0]), await connected(tokens[1])
        unknown = await ask(
            watcher, {"type": "subscribe", "channel": f"candles:{EXCHANGE}:NOPE/USDT:5m"}
        )
        assert unknown["code"] == "unknown_symbol"
        snapshot = await ask(watcher, {"type": "subscribe", "channel": channel})
        assert snapshot["type"] == "candles.snapshot"
        assert len(snapshot["data"]["candles"]) == 5
        # when
        await publish([candles_group(EXCHANGE, SYMBOL, TIMEFRAME)], closed)
        # then
        assert (await watcher.receive_json_from(timeout=5))["type"] == "candles.closed"
        assert await silent(bystander)
        for socket in (watcher, bystander):
            await socket.disconnect()

    run(scenario)


def test_a_subscription_over_the_limit_is_refused(user, bot, monkeypatch):
    monkeypatch.setattr(protocol, "MAX_SUBSCRIPTIONS", 1)
    token = token_of(user)

    async def scenario() -> None:
        socket = await connected(token)
        await ask(socket, {"type": "subscribe", "channel": f"bot:{bot.pk}"})
        reply = await ask(socket, {"type": "subscribe", "channel": "candles:bitget:BTC/USDT:5m"})
        assert reply["code"] == "too_many_subscriptions"
        # a subscription it has is renewed, with a fresh snapshot
        again = await ask(socket, {"type": "subscribe", "channel": f"bot:{bot.pk}"})
        assert again["type"] == "bot.snapshot"
        await socket.disconnect()

    run(scenario)


def test_a_disconnect_leaves_every_group(user, bot):
    token = token_of(user)
    layer = get_channel_layer()
    groups = object_groups("bot", bot.pk, user.pk)

    def subscribers(group: str) -> int:
        # This process's subscription to the group's pub/sub channel, as Redis sees it.
        name = layer._get_group_channel_name(group)
        return int(dict(get_redis().pubsub_numsub(name))[name.encode()])

    async def scenario() -> None:
        socket = await connected(token)
        await ask(socket, {"type": "subscribe", "channel": f"bot:{bot.pk}"})
        assert [subscribers(group) for group in groups] == [1, 1]
        # when
        await socket.disconnect()
        # then
        assert [subscribers(group) for group in groups] == [0, 0]

    run(scenario)


def test_a_tick_announces_the_candle_it_acted_on(user, group_listener):  # noqa: F811
    # given: a replay bot on stored candles, listened to on its group
    rows = store_sample_candles(FIRST_ROW, 40)
    replay = replay_bot(user, paper_account(user), start_ms=rows[30].open_time)
    replay.start()
    replay.tick()  # its first candle (the one before the start): a replay skips none
    group_listener.join(f"bot-{replay.bot.pk}")
    # when
    replay.next_candle()
    # then
    messages = group_listener.receive(seconds=1)  # all was published before it returned
    events = [e for m in messages for e in (m.get("events") or [m["event"]])]
    candles = [e for e in events if e["type"] == "bot.candle"]
    assert len(candles) == 1
    data = candles[0]["data"]
    assert (data["exchange"], data["symbol"], data["timeframe"]) == (EXCHANGE, SYMBOL, TIMEFRAME)
    assert data["candle"][0] == replay.refresh().last_candle_ms
