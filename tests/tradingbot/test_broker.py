"""tradingbot.broker reads the tasks the real (embedded) Redis broker holds."""

from __future__ import annotations

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
