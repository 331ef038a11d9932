"""What the broker holds: the tasks whose message is waiting in a queue or was delivered to a
worker and not yet acknowledged.

Read at a worker's start (``backtests`` re-sends the runs whose message is gone), so it reads the
Redis transport's own keys: one list per queue and priority step, and the ``unacked`` hash of
delivered messages (acknowledged late, ``CELERY_TASK_ACKS_LATE``). Another transport cannot be
read this way: :func:`pending_tasks` then returns ``None`` ("cannot tell").
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tradingbot.logconfig import context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingTask:
    """A task message the broker holds: Celery's task id and name, its positional args, and
    when it was delivered to a worker (epoch seconds; None while it waits in its queue)."""

    id: str
    name: str
    args: tuple[Any, ...]
    delivered_at: float | None = None


def pending_tasks(queues: Iterable[str]) -> list[PendingTask] | None:
    """Tasks waiting in ``queues`` or delivered from them and unacknowledged; ``None`` when the
    broker is not Redis. Read queues first, then the unacknowledged: a message moves from the
    one to the other, so it is seen in at least one of them."""
    from tradingbot.celery import app

    wanted = set(queues)
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        if not hasattr(channel, "unacked_key") or not hasattr(channel, "_q_for_pri"):
            return None
        client = channel.client
        keys = {
            channel._q_for_pri(queue, step) for queue in wanted for step in channel.priority_steps
        }
        waiting = [raw for key in sorted(keys) for raw in client.lrange(key, 0, -1)]
        delivered = client.hgetall(channel.unacked_key)
        delivered_at = dict(client.zrange(channel.unacked_index_key, 0, -1, withscores=True))
    found = [_task_of(json.loads(raw)) for raw in waiting]
    for tag, raw in delivered.items():
        # kombu keeps [message, exchange, routing key]; the routing key is the message's queue
        # (other queues' messages are another worker pool's business).
        message, _exchange, routing_key = json.loads(raw)
        if routing_key in wanted:
            found.append(_task_of(message, delivered_at.get(tag)))
    return [task for task in found if task is not None]


def _task_of(message: dict[str, Any], delivered_at: float | None = None) -> PendingTask | None:
    """Celery's message protocol 2: the task in the headers, ``[args, kwargs, embed]`` in the
    body (base64 of JSON on Redis)."""
    try:
        headers = message["headers"]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return PendingTask(
            id=str(headers["id"]),
            name=str(headers["task"]),
            args=tuple(args),
            delivered_at=float(delivered_at) if delivered_at is not None else None,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        logger.warning("broker.unreadable_message", extra=context(error=type(exc).__name__))
        return None
