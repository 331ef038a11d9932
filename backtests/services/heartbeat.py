"""A heartbeat for a run in progress, independent of how long any one step takes.

While a backtest or a sweep combination runs, a daemon thread stamps its row's ``heartbeat_at``
every quarter of ``BACKTEST_STALE_SECONDS``. The stale check then fails only runs whose process is
gone (killed, out of memory, machine lost): a slow strategy on two million candles keeps beating,
a SIGKILLed worker stops at once. The thread dies with its process, which is the point.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from tradingbot.logconfig import context

logger = logging.getLogger(__name__)


class Heartbeat:
    """``with Heartbeat(rows): ...`` stamps ``rows.update(heartbeat_at=now)`` periodically."""

    def __init__(self, rows: QuerySet, *, label: str, interval: float | None = None) -> None:
        self.rows = rows
        self.label = label
        self.interval = interval or max(1.0, settings.BACKTEST_STALE_SECONDS / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{label}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        failing = False
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.rows.update(heartbeat_at=timezone.now())
                except Exception as exc:  # a busy database: the next beat may get through
                    if not failing:
                        logger.warning(
                            "heartbeat.failed",
                            extra=context(run=self.label, error=type(exc).__name__),
                        )
                    failing = True
                else:
                    failing = False
        finally:
            connection.close()  # this thread's own connection
