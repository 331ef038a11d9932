"""The live-updates WebSocket on a REAL daphne process, talked to by REAL clients.

Daphne runs as the Procfile's ``web`` line runs it, with a one-second ping interval, on the test
database and the test's Redis; the clients are the ``websockets`` library and, for what no
well-behaved client does (a TCP reset, a socket that stops reading), a raw socket. Events are
published from this process, or from a real Celery worker, never from daphne's.

After each scenario the server must still serve (``/healthz`` and a fresh connection that
authenticates and pongs), and its log must be bounded: one ``ws.closed`` line per connection,
no other warning, error or traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from websockets.exceptions import InvalidStatus

from backtests.models import Backtest, RunStatus
from backtests.services.backtests import backtest_create
from backtests.spec import RunSpec
from backtests.tasks import run_backtest_task
from bots.models import Bot
from tests.bots.bot_helpers import EXCHANGE, SYMBOL, TIMEFRAME, as_datetime
from tests.conftest import WorkerProcess
from tests.tradingbot.live_server_helpers import (
    DROP_KINDS,
    PING_INTERVAL,
    PING_TIMEOUT,
    Daphne,
    RawClient,
    bot,
    closed_fields,
    closed_lines,
    connect_and_drop,
    daphne,
    group_subscribers,
    in_batches,
    make_bot,
    make_user,
    mark,
    market,
    messages_then_close,
    publish,
    receive,
    received_until,
    received_within,
    second_daphne,
    seqs,
    served_and_bounded,
    server,
    token,
    token_of,
    token_with_group,
    wait_for_closed_lines,
    wait_for_subscribers,
    ws_authed,
    ws_connect,
    ws_ping,
    ws_session,
    ws_subscribe,
)

__all__ = [  # fixtures
    "bot", "daphne", "make_bot", "make_user", "mark", "market", "second_daphne", "server", "token",
]  # fmt: skip

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]

QUIET_WINDOW = 1.5  # seconds a client listens to show that nothing (more) arrives


# --- 1. Connections dropped without a close frame ----------------------------------------------

CYCLES = 1000


def test_a_thousand_connections_dropped_without_closing_leave_no_group_member_and_one_line_each(
    server: Daphne, bot: Bot
) -> None:
    # given: a user with a bot, and one connection of theirs that stays
    user = bot.user
    token, token_group = token_with_group(user)
    channel, user_group, bot_group = f"bot:{bot.pk}", f"user-{user.pk}", f"bot-{bot.pk}"
    mark = server.log_mark()

    async def scenario() -> None:
        async with ws_session(server, token) as witness:
            # the user's and the token's groups are subscribed by the one daphne, for the witness
            assert [group_subscribers(group) for group in (user_group, token_group)] == [1, 1]
            # when: 1,000 connections of the same user drop, 50 at a time, at every stage
            await in_batches(
                CYCLES,
                lambda index: connect_and_drop(
                    server, token, channel, DROP_KINDS[index % len(DROP_KINDS)]
                ),
            )
            # then: once their disconnects are handled nobody is left in the bot's group (only
            # the dropped connections joined it), and the witness is served as before
            await wait_for_subscribers(bot_group, 0)
            assert [group_subscribers(group) for group in (user_group, token_group)] == [1, 1]
            assert await ws_ping(witness) == {"type": "pong"}
        # and when the witness goes too, the user's and the token's groups are empty: none of the
        # 1,001 connections left a membership behind in the daphne process
        for group in (user_group, token_group):
            await wait_for_subscribers(group, 0)

    asyncio.run(scenario())
    # and each dropped connection wrote its one line, as a drop (1006), not as an error
    text = wait_for_closed_lines(server, mark, CYCLES + 1)
    codes = [closed_fields(line)["code"] for line in closed_lines(text)]
    assert codes.count("1006") == CYCLES, sorted(set(codes))
    served_and_bounded(server, mark, token, connections=CYCLES + 1)


# --- 2. Pings -------------------------------------------------------------------------------


def test_every_form_of_ping_gets_a_pong_and_nothing_in_the_log(
    server: Daphne, token: str, mark: int
) -> None:

    async def scenario() -> list[dict[str, Any]]:
        async with ws_session(server, token) as ws:
            replies = []
            for ping in ("ping", '{"action": "ping"}', '{"type":"ping"}'):
                # when
                await ws.send(ping)
                replies.append(await receive(ws))
            return replies

    # then
    assert asyncio.run(scenario()) == [{"type": "pong"}] * 3
    text = wait_for_closed_lines(server, mark, 1)
    [line] = closed_lines(text)
    assert " INFO " in line
    assert closed_fields(line)["bad"] == "0"
    served_and_bounded(server, mark, token, connections=1)


# --- 3. Bad messages ----------------------------------------------------------------------------


def test_twenty_bad_messages_are_answered_and_the_twenty_first_closes_with_4008(
    server: Daphne, token: str, mark: int
) -> None:

    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any], list[Any], int | None]:
        ws = await ws_authed(server, token)
        # when: twenty messages that are not JSON
        errors = []
        for index in range(20):
            await ws.send(f"{{not json {index}")
            errors.append(await receive(ws))
        pong = await ws_ping(ws)
        # and a twenty-first
        await ws.send("{still not json")
        last, code = await messages_then_close(ws)
        return errors, pong, last, code

    errors, pong, last, code = asyncio.run(scenario())
    # then: each answered, the connection open (a ping still pongs) until the 21st
    assert [(error["type"], error["code"]) for error in errors] == [
        ("error", "invalid_message")
    ] * 20
    assert pong == {"type": "pong"}
    assert [message["code"] for message in last] == ["invalid_message"]
    assert code == 4008
    [line] = closed_lines(wait_for_closed_lines(server, mark, 1))
    assert closed_fields(line)["reason"] == "too_many_bad_messages"
    assert closed_fields(line)["bad"] == "21"
    served_and_bounded(server, mark, token, connections=1)


# --- 4. Oversized messages ----------------------------------------------------------------------


def test_a_text_over_64_kib_closes_with_4009_and_one_over_1_mib_with_1009(
    server: Daphne, token: str, mark: int
) -> None:

    async def oversized(size: int) -> int | None:
        ws = await ws_authed(server, token)
        await ws.send("x" * size)
        messages, code = await messages_then_close(ws)
        assert messages == []
        return code

    # when
    just_over_limit = asyncio.run(oversized(64 * 1024 + 1))
    over_daphnes_limit = asyncio.run(oversized(1024 * 1024 + 1))
    # then: our limit closes with 4009; daphne's (autobahn's) with 1009 (tests/test_ws_limits.py)
    assert just_over_limit == 4009
    assert over_daphnes_limit == 1009
    text = wait_for_closed_lines(server, mark, 2)
    assert closed_fields(closed_lines(text)[0])["reason"] == "message_too_big"
    served_and_bounded(server, mark, token, connections=2)


# --- 5. Binary frames ---------------------------------------------------------------------------


def test_a_binary_frame_gets_an_error_and_the_connection_stays_open(
    server: Daphne, token: str, mark: int
) -> None:

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with ws_session(server, token) as ws:
            # when
            await ws.send(b'{"type": "ping"}')
            return await receive(ws), await ws_ping(ws)

    error, pong = asyncio.run(scenario())
    # then
    assert (error["type"], error["code"]) == ("error", "invalid_message")
    assert pong == {"type": "pong"}
    served_and_bounded(server, mark, token, connections=1)


# --- 6. Authentication --------------------------------------------------------------------------


def test_no_auth_in_time_a_first_message_that_is_not_auth_and_a_bad_token_close_with_4401(
    server: Daphne, token: str, mark: int
) -> None:

    async def silent() -> tuple[list[Any], int | None]:
        ws = await ws_connect(server)
        return await messages_then_close(ws)

    async def first_message(text: str) -> tuple[list[Any], int | None]:
        ws = await ws_connect(server)
        await ws.send(text)
        return await messages_then_close(ws)

    async def scenario() -> list[tuple[list[Any], int | None]]:
        # when: the three at once (the silent one waits out the 5 s)
        return list(
            await asyncio.gather(
                silent(),
                first_message('{"type": "ping"}'),
                first_message('{"type": "auth", "token": "not-a-token"}'),
            )
        )

    timed_out, not_auth, bad_token = asyncio.run(scenario())
    # then
    assert [(m["type"], m["code"]) for m in timed_out[0]] == [("error", "unauthenticated")]
    assert [(m["type"], m["code"]) for m in not_auth[0]] == [("error", "unauthenticated")]
    assert [(m["type"], m["code"]) for m in bad_token[0]] == [("error", "auth_failed")]
    assert [timed_out[1], not_auth[1], bad_token[1]] == [4401, 4401, 4401]
    text = wait_for_closed_lines(server, mark, 3)
    reasons = sorted(closed_fields(line)["reason"] for line in closed_lines(text))
    assert reasons == ["auth_failed", "auth_timeout", "unauthenticated"]
    served_and_bounded(server, mark, token, connections=3)


# --- 7. Publishing while clients drop -----------------------------------------------------------

STEADY = 10
CHURN = 300
EVENTS = 20


def test_events_published_while_clients_drop_reach_each_connected_client_exactly_once(
    server: Daphne, bot: Bot
) -> None:
    # given: ten connections of a bot's owner, half of them subscribed to the bot
    user = bot.user
    token = token_of(user)
    channel = f"bot:{bot.pk}"
    mark = server.log_mark()

    async def publisher() -> None:
        for seq in range(EVENTS):
            await asyncio.to_thread(publish, bot, seq)
            await asyncio.sleep(0.05)

    async def listen(ws: Any) -> list[dict[str, Any]]:
        # Read all along, as a live client does: one that stops reading stops answering pings
        # too (websockets pauses a connection whose queue is full) and is rightly dropped.
        events = await received_until(
            ws, lambda message: message["data"].get("seq") == EVENTS - 1, 30
        )
        return events + await received_within(ws, QUIET_WINDOW)

    async def scenario() -> list[list[dict[str, Any]]]:
        steady = [await ws_authed(server, token) for _ in range(STEADY)]
        for ws in steady[: STEADY // 2]:
            assert (await ws_subscribe(ws, channel))["type"] == "bot.snapshot"
        listeners = [asyncio.create_task(listen(ws)) for ws in steady]
        # when: events are published from this process while 300 others connect and drop
        await asyncio.gather(
            publisher(),
            in_batches(
                CHURN,
                lambda index: connect_and_drop(
                    server, token, channel, DROP_KINDS[index % len(DROP_KINDS)]
                ),
            ),
        )
        received = await asyncio.gather(*listeners)
        for ws in steady:
            await ws.close()
        # and once the steady clients have gone too, no membership is left behind
        await wait_for_subscribers(f"bot-{bot.pk}", 0)
        await wait_for_subscribers(f"user-{user.pk}", 0)
        return received

    received = asyncio.run(scenario())
    # then: every connected client got every event once, in order, and nothing else
    for index, messages in enumerate(received):
        subscribed = index < STEADY // 2
        assert seqs(messages) == list(range(EVENTS)), f"subscribed={subscribed}"
        assert {message["type"] for message in messages} == {"bot.status"}
        assert {message["channel"] for message in messages} == {channel}
    served_and_bounded(server, mark, token, connections=STEADY + CHURN)


# --- 8. Half-open sockets -----------------------------------------------------------------------


def test_a_socket_that_never_answers_pings_is_closed_and_leaves_its_groups(
    server: Daphne, make_user: Callable[[], Any], make_bot: Callable[[Any], Bot]
) -> None:
    # given: a raw client that authenticates, subscribes, and then never reads again (so never
    # answers a ping); and a websockets client that sends nothing but answers pings
    gone, alive = make_user(), make_user()
    gone_bot, alive_bot = make_bot(gone), make_bot(alive)
    (gone_token, gone_token_group), alive_token = token_with_group(gone), token_of(alive)
    mark = server.log_mark()

    async def scenario() -> tuple[bool, list[dict[str, Any]], dict[str, Any]]:
        raw = await RawClient.open(server)
        await raw.auth(gone_token)
        await raw.send_json({"type": "subscribe", "channel": f"bot:{gone_bot.pk}"})
        assert (await raw.receive_json())["type"] == "bot.snapshot"
        gone_groups = (f"user-{gone.pk}", gone_token_group, f"bot-{gone_bot.pk}")
        assert [group_subscribers(group) for group in gone_groups] == [1, 1, 1]
        async with ws_session(server, alive_token) as listener:
            # when: ping interval + ping timeout (and daphne's 2 s check) go by, several times
            for group in gone_groups:
                await wait_for_subscribers(group, 0)
            await asyncio.sleep(PING_INTERVAL + PING_TIMEOUT)
            # then: the one that answers pings is still connected, and still receives events
            await asyncio.to_thread(publish, alive_bot, 1)
            events = await received_until(listener, lambda message: message["type"] == "bot.status")
            pong = await ws_ping(listener)
        return await raw.closed_by_server(), events, pong

    closed, events, pong = asyncio.run(scenario())
    # then: the raw socket was closed by the server, with one line saying so
    assert closed
    assert seqs(events) == [1]
    assert pong == {"type": "pong"}
    first = closed_lines(wait_for_closed_lines(server, mark, 1))[0]
    fields = closed_fields(first)
    assert (fields["user_id"], fields["subscriptions"]) == (str(gone.pk), "1"), first
    assert fields["code"] == "1006"  # dropped, not closed by a close frame
    assert group_subscribers(f"user-{gone.pk}") == 0
    served_and_bounded(server, mark, alive_token, connections=2)


# --- 9. One user's events never reach another --------------------------------------------------


def test_a_user_cannot_subscribe_to_another_users_bot_nor_receive_its_events(
    server: Daphne, make_user: Callable[[], Any], make_bot: Callable[[Any], Bot]
) -> None:
    # given: A logged in through Django (a session cookie, from a page of the server's origin),
    # B with an API token
    owner, intruder = make_user(), make_user()
    bot = make_bot(owner)
    browser = Client()
    browser.force_login(owner)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    intruder_token = token_of(intruder)
    channel = f"bot:{bot.pk}"
    mark = server.log_mark()

    async def scenario() -> tuple[Any, ...]:
        a = await ws_connect(server, origin=server.url, additional_headers={"Cookie": cookie})
        a_hello = await receive(a)
        b = await ws_authed(server, intruder_token)
        # when: B asks for A's bot; A subscribes to it; A's bot has events
        b_reply = await ws_subscribe(b, channel)
        a_snapshot = await ws_subscribe(a, channel)
        for seq in range(3):
            await asyncio.to_thread(publish, bot, seq)
        a_got = await received_until(a, lambda message: message["data"].get("seq") == 2)
        b_got = await received_within(b, QUIET_WINDOW)
        await a.close()
        await b.close()
        await wait_for_subscribers(f"bot-{bot.pk}", 0)
        return a_hello, b_reply, a_snapshot, a_got, b_got

    a_hello, b_reply, a_snapshot, a_got, b_got = asyncio.run(scenario())
    # then
    assert a_hello == {"type": "auth.ok", "user": owner.pk}
    assert (b_reply["type"], b_reply["code"], b_reply["channel"]) == ("error", "not_found", channel)
    assert "data" not in b_reply
    assert (a_snapshot["type"], a_snapshot["id"]) == ("bot.snapshot", bot.pk)
    assert seqs(a_got) == [0, 1, 2]
    assert b_got == []
    served_and_bounded(server, mark, intruder_token, connections=2)


def test_a_session_cookie_from_another_sites_page_is_refused(
    server: Daphne, make_user: Callable[[], Any]
) -> None:
    # given: a logged-in user's cookie, riding on another site's page
    user = make_user()
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    mark = server.log_mark()

    async def scenario() -> int:
        try:
            ws = await ws_connect(
                server, origin="http://evil.example", additional_headers={"Cookie": cookie}
            )
        except InvalidStatus as refused:
            return refused.response.status_code
        await ws.close()
        return 101

    # when / then: refused before any consumer runs (no connection, so no ws.closed line)
    assert asyncio.run(scenario()) == 403
    served_and_bounded(server, mark, token_of(user), connections=0)


# --- 10. Two web processes, one Redis, a real worker -------------------------------------------

FINISHED = {RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED}


def test_a_client_on_a_second_daphne_receives_a_backtest_finished_by_a_real_worker(
    server: Daphne,
    second_daphne: Daphne,
    celery_worker_process: WorkerProcess,
    make_user: Callable[[], Any],
    market: list[Any],
) -> None:
    # given: a queued backtest whose task is not sent yet, and the owner subscribed to it on
    # both web processes
    user = make_user()
    token = token_of(user)
    spec = RunSpec(
        strategy="ma_cross", params={"fast": 10, "slow": 30, "ma": "sma"},
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME,
        initial_cash=Decimal(10000), fee_rate=Decimal("0.001"),
    )  # fmt: skip
    backtest = backtest_create(
        user=user, spec=spec, enqueue=False,
        start=as_datetime(market[0].open_time), end=as_datetime(market[-1].open_time + 1),
    )  # fmt: skip
    channel = f"backtest:{backtest.pk}"
    marks = server.log_mark(), second_daphne.log_mark()

    def finished(message: dict[str, Any]) -> bool:
        return message["type"] == "backtest.status" and message["data"]["status"] in FINISHED

    async def scenario() -> tuple[list[dict[str, Any]], ...]:
        on_second = await ws_authed(second_daphne, token)
        on_first = await ws_authed(server, token)
        snapshots = [await ws_subscribe(ws, channel) for ws in (on_second, on_first)]
        # when: the worker runs it (the message the service sends on commit)
        await asyncio.to_thread(
            run_backtest_task.apply_async,
            args=[backtest.pk], task_id=backtest.task_id, queue=celery_worker_process.queue,
        )  # fmt: skip
        received = [
            await received_until(ws, finished, timeout=120) + await received_within(ws, 1.0)
            for ws in (on_second, on_first)
        ]
        await on_second.close()
        await on_first.close()
        return snapshots, *received

    snapshots, on_second, on_first = asyncio.run(scenario())
    # then: both subscribed while queued, and both saw it finish, once, as "done"
    assert [snapshot["data"]["status"] for snapshot in snapshots] == [RunStatus.QUEUED] * 2
    done = {
        "type": "backtest.status", "channel": channel, "id": backtest.pk,
        "data": {"status": RunStatus.DONE, "progress": 1.0, "error": ""},
    }  # fmt: skip
    for received in (on_second, on_first):
        assert received[-1] == done, celery_worker_process.log_path.read_text()[-3000:]
        assert [message for message in received if finished(message)] == [done]
        assert {message["channel"] for message in received} == {channel}
    assert Backtest.objects.get(pk=backtest.pk).status == RunStatus.DONE
    served_and_bounded(second_daphne, marks[1], token, connections=1)
    served_and_bounded(server, marks[0], token, connections=1)
