"""tradingbot.broker reads the tasks the real (embedded) Redis broker holds."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tradingbot import broker
from tradingbot.broker import PendingTask
from tradingbot.celery import app
from tradingbot.tasks import enqueue


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"broker-{uuid.uuid4().hex[:8]}"
    yield name
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(name)


def test_it_reads_a_waiting_task_with_its_id_name_and_args(queue):
    # given a message sent to a queue no worker reads
    sent = enqueue("backtests.tasks.run_backtest_task", 4242, queue=queue)

    # when the broker is read
    held = broker.pending_tasks([queue])

    # then it holds that task, and another queue does not
    assert held is not None
    assert PendingTask(id=sent.id, name="backtests.tasks.run_backtest_task", args=(4242,)) in held
    other = broker.pending_tasks([f"{queue}-other"])
    assert other is not None
    assert sent.id not in {task.id for task in other}


def test_it_counts_only_the_unacknowledged_messages_of_the_queues_asked_for(queue):
    # given two messages delivered and unacknowledged: one from this queue, one from another
    # (as a worker of another pool, or a killed one, leaves them in kombu's ``unacked`` hash)

    ours = enqueue("backtests.tasks.run_backtest_task", 4343, queue=queue)
    theirs = enqueue("backtests.tasks.run_backtest_task", 4444, queue=f"{queue}-other")
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        client = channel.client
        for name in (queue, f"{queue}-other"):
            raw = client.rpop(name)
            tag = f"{name}-tag"
            client.hset(channel.unacked_key, tag, json.dumps([json.loads(raw), "", name]))
            client.zadd(channel.unacked_index_key, {tag: 1.0})

    try:
        # when the broker is read for this queue
        held = broker.pending_tasks([queue])

        # then it holds this queue's delivered message, delivered at 1.0, and not the other's
        assert held is not None
        ids = {task.id: task.delivered_at for task in held}
        assert ids.get(ours.id) == 1.0
        assert theirs.id not in ids
    finally:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            for name in (queue, f"{queue}-other"):
                channel.client.hdel(channel.unacked_key, f"{name}-tag")
                channel.client.zrem(channel.unacked_index_key, f"{name}-tag")
