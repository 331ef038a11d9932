"""The live-updates protocol as pure functions: parsing, channels, the bad-message limit, and
which events a connection may pass on."""

from __future__ import annotations

import pytest

from markets.events import candles_group
from tradingbot.live import protocol
from tradingbot.live.protocol import Auth, Channel, Ping, ProtocolError, Subscribe, Unsubscribe


@pytest.mark.parametrize(
    "text", ["ping", " PING\n", '{"type": "ping"}', '{"action": "ping"}', '{"type":"ping","x":1}']
)
def test_it_reads_every_ping_variant_as_a_ping(text):
    assert protocol.message_parse(text) == Ping()


def test_it_reads_auth_subscribe_and_unsubscribe():
    assert protocol.message_parse('{"type": "auth", "token": "k"}') == Auth("k")
    assert protocol.message_parse('{"type": "subscribe", "channel": "bot:7"}') == Subscribe(
        Channel("bot", object_id=7)
    )
    assert protocol.message_parse(
        '{"type": "unsubscribe", "channel": "candles:bitget:BTC/USDT:5m"}'
    ) == Unsubscribe(Channel("candles", exchange="bitget", symbol="BTC/USDT", timeframe="5m"))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{bad", "invalid_message"),
        ("", "invalid_message"),
        ("[1, 2]", "invalid_message"),
        ('"ping2"', "invalid_message"),
        ('{"type": "dance"}', "invalid_message"),
        ('{"action": "dance"}', "invalid_message"),
        ('{"type": "auth"}', "invalid_message"),
        ('{"type": "auth", "token": 5}', "invalid_message"),
        ('{"type": "subscribe"}', "invalid_channel"),
        ('{"type": "subscribe", "channel": 5}', "invalid_channel"),
        ('{"type": "subscribe", "channel": "bot:x"}', "invalid_channel"),
        ('{"type": "subscribe", "channel": "bot:-1"}', "invalid_channel"),
        ('{"type": "subscribe", "channel": "user:1"}', "invalid_channel"),
        ('{"type": "subscribe", "channel": "candles:bitget:BTC/USDT"}', "invalid_channel"),
        ('{"type": "subscribe", "channel": "candles:bitget:BTC/USDT:7m"}', "invalid_channel"),
    ],
)
def test_it_refuses_what_it_cannot_act_on_with_a_code(text, code):
    with pytest.raises(ProtocolError) as caught:
        protocol.message_parse(text)
    assert caught.value.code == code


def test_a_futures_symbol_keeps_its_colon_and_gets_a_valid_group_name():
    channel = protocol.channel_parse("candles:bitget:BTC/USDT:USDT:1h")
    assert (channel.symbol, channel.timeframe) == ("BTC/USDT:USDT", "1h")
    assert channel.name == "candles:bitget:BTC/USDT:USDT:1h"
    assert channel.group.replace("-", "").replace(".", "").replace("_", "").isalnum()
    assert channel.group != protocol.channel_parse("candles:bitget:BTC/USDT:1h").group


def test_bad_messages_close_only_past_the_limit_within_a_minute():
    now = [0.0]
    counter = protocol.BadMessageCounter(limit=20, window_seconds=60, clock=lambda: now[0])
    # given: 20 bad messages in a minute are tolerated
    assert not any(counter.add() for _ in range(20))
    # when / then: the 21st within the minute is one too many
    assert counter.add()
    # and a minute later the count starts again
    now[0] = 61.0
    assert not counter.add()


EVENT = {"type": "bot.status", "id": 5, "channel": "bot:5", "owner": 1, "data": {}}


def test_an_event_of_another_owner_is_never_passed_on():
    for group in ("user-1", "bot-5", "user-2"):
        assert not protocol.admits(
            EVENT, group=group, user_id=2, own_group="user-2", subscribed={"bot:5"}
        )


def test_an_object_event_arrives_once_whether_subscribed_or_not():
    def passed(subscribed: set[str]) -> list[str]:
        return [
            group
            for group in ("user-1", "bot-5")
            if protocol.admits(
                EVENT, group=group, user_id=1, own_group="user-1", subscribed=subscribed
            )
        ]

    assert passed(set()) == ["user-1"]
    assert passed({"bot:5"}) == ["bot-5"]


def test_a_market_event_goes_to_its_subscribers_only():
    event = {"type": "candles.closed", "channel": "candles:bitget:BTC/USDT:5m", "owner": None}
    group = candles_group("bitget", "BTC/USDT", "5m")
    assert protocol.admits(
        event, group=group, user_id=1, own_group="user-1", subscribed={event["channel"]}
    )
    assert not protocol.admits(event, group=group, user_id=1, own_group="user-1", subscribed=set())


def test_the_client_never_sees_the_owner():
    assert protocol.client_view(EVENT) == {
        "type": "bot.status", "id": 5, "channel": "bot:5", "data": {},
    }  # fmt: skip
