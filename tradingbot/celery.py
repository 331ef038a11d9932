"""The Celery application: broker on Redis, JSON only, beat on django-celery-beat's database.

Queues: ``default`` (housekeeping), ``trading`` (bot ticks) and ``backtests`` (backtests and
sweeps), so that a long sweep never delays a trading tick: run dedicated workers per queue.
"""

from __future__ import annotations

import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")

app = Celery("tradingbot")
app.config_from_object("django.conf:settings", namespace="CELERY")
QUEUES = ("default", "trading", "backtests")
# One exchange and routing key per queue: a task sent to one queue lands in that queue only.
app.conf.task_queues = tuple(Queue(name, Exchange(name), routing_key=name) for name in QUEUES)
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"
app.autodiscover_tasks()


@setup_logging.connect
def configure_logging(**_kwargs: Any) -> None:
    """Workers and beat log through the project's dictConfig instead of Celery's own."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
