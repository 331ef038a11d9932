"""Live events through the real channel layer (Redis): sent after commit, best effort."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from tradingbot import events


async def _listen(group: str, act: Any, *, quiet_for: float | None = None) -> list[Any]:
    """Subscribe to ``group``, run ``act`` (sync, in a thread), collect what arrives.

    With ``quiet_for``, also check that nothing arrives while ``act`` is still running: ``act``
    gets an ``await_nothing()`` callable. One event loop throughout: the layer's receive buffers
    belong to the loop that made them.
    """
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    loop = asyncio.get_running_loop()

    def nothing_yet() -> bool:
        future = asyncio.run_coroutine_threadsafe(_receive(channel, quiet_for or 0.3), loop)
        return future.result() is None

    await sync_to_async(act, thread_sensitive=False)(nothing_yet)
    received = []
    while (message := await _receive(channel, 1.0)) is not None:
        received.append(message)
    return received


_pending: dict[str, asyncio.Future[Any]] = {}


async def _receive(channel: str, timeout: float) -> Any:
    """The next message, or None after ``timeout``. The wait is never cancelled: cancelling
    the pub/sub layer's ``receive`` unsubscribes the channel (a consumer's receive is cancelled
    only when it ends)."""
    pending = _pending.get(channel)
    if pending is None:
        pending = _pending[channel] = asyncio.ensure_future(get_channel_layer().receive(channel))
    done, _ = await asyncio.wait({pending}, timeout=timeout)
    if not done:
        return None
    del _pending[channel]
    return pending.result()


def listen(group: str, act: Any) -> list[Any]:
    return async_to_sync(_listen)(group, act)


@pytest.fixture
def group() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_an_event_reaches_the_group_as_a_stream_event(group):
    def act(nothing_yet: Any) -> None:
        assert events.publish_now([group], {"type": "thing.status", "id": 1, "data": {"a": 1}})

    assert listen(group, act) == [
        {
            "type": "stream.event",
            "group": group,
            "event": {"type": "thing.status", "id": 1, "data": {"a": 1}},
        }
    ]


@pytest.mark.django_db(transaction=True)
def test_an_event_is_sent_only_once_the_transaction_commits(group):
    def act(nothing_yet: Any) -> None:
        with transaction.atomic():
            events.publish_after_commit([group], {"type": "thing.status", "id": 2, "data": {}})
            assert nothing_yet()

    received = listen(group, act)

    assert [message["event"]["id"] for message in received] == [2]


@pytest.mark.django_db(transaction=True)
def test_an_event_of_a_rolled_back_transaction_is_never_sent(group):
    def act(nothing_yet: Any) -> None:
        try:
            with transaction.atomic():
                events.publish_after_commit([group], {"type": "thing.status", "id": 3})
                raise RuntimeError("rollback")
        except RuntimeError:
            pass

    assert listen(group, act) == []


def test_a_layer_outage_is_logged_once_and_reported_as_not_sent(group, monkeypatch, caplog):
    class DownLayer:
        async def group_send(self, group: str, message: Any) -> None:
            raise ConnectionError("redis down")

    monkeypatch.setattr(events, "get_channel_layer", lambda: DownLayer())
    monkeypatch.setattr(events, "_failing", False)
    caplog.set_level(logging.INFO, logger="tradingbot.events")

    results = [events.publish_now([group], {"type": "x.y", "id": i}) for i in range(5)]
    monkeypatch.setattr(events, "get_channel_layer", get_channel_layer)
    recovered = events.publish_now([group], {"type": "x.y", "id": 6})

    assert results == [False] * 5
    assert recovered
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("events.publish_failed") == 1
    assert messages.count("events.publish_recovered") == 1


def test_a_batch_reaches_each_group_as_one_message_with_its_events_in_order():
    first, second = f"test-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    batch = [
        ([first, second], {"type": "bot.event", "id": 1, "data": {"n": 1}}),
        ([first], {"type": "bot.position", "id": 1, "data": {"n": 2}}),
        ([first], {"type": "bot.event", "id": 2, "data": {"n": 3}}),
    ]
    received: dict[str, list[Any]] = {}

    async def both() -> None:
        layer = get_channel_layer()
        channels = {}
        for group in (first, second):
            channels[group] = await layer.new_channel()
            await layer.group_add(group, channels[group])
        await sync_to_async(events.publish_batch_now, thread_sensitive=False)(batch)
        for group, channel in channels.items():
            received[group] = []
            while (message := await _receive(channel, 1.0)) is not None:
                received[group].append(message)

    async_to_sync(both)()

    assert received[first] == [
        {"type": "stream.events", "group": first, "events": [event for _, event in batch]}
    ]
    assert received[second] == [{"type": "stream.event", "group": second, "event": batch[0][1]}]
