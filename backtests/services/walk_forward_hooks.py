"""What a window's optimisation tells its walk-forward, and the walk-forward's status event.

The optimisations' services call :func:`optimization_published` each time they publish an
optimisation's status (its start, its progress, its end, a cancel). For an optimisation that is
a walk-forward's window, that is where the walk-forward hears of it, without the optimisations
knowing more of walk-forwards than this one call:

- each time, the walk-forward goes ``running`` (at its first window's first trial), counts
  its windows' finished trials again and publishes its progress;
- once it is over (done, failed or cancelled), the window's task is sent, after commit, by name
  (``run_walk_forward_window_task``): it runs the out-of-sample backtest, or fails the window.

This module imports no other service, so the optimisations' module may import it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from backtests.events import walk_forward_status_data
from backtests.models import (
    ACTIVE_STATUSES,
    Optimization,
    RunStatus,
    WalkForward,
    WalkForwardWindow,
)
from backtests.services.runs import publish_status
from tradingbot.logconfig import context
from tradingbot.tasks import enqueue as enqueue_task

logger = logging.getLogger(__name__)

WINDOW_TASK = "backtests.tasks.run_walk_forward_window_task"


def optimization_published(optimization: Optimization) -> None:
    """Tell the walk-forward ``optimization`` is a window of (if any) how it goes."""
    window = (
        WalkForwardWindow.objects.filter(optimization_id=optimization.pk)
        .values_list("pk", "walk_forward_id")
        .first()
    )
    if window is None:
        return
    window_id, walk_forward_id = window
    # Counted again at the end too: progress events are throttled, and two windows' last events
    # may each have counted before the other's trials committed.
    walk_forward_progressed(walk_forward_id=walk_forward_id)
    if not optimization.is_active:
        transaction.on_commit(lambda: send_window(window_id))


def walk_forward_progressed(*, walk_forward_id: int) -> None:
    """The walk-forward is ``running`` (from ``queued``), its count of finished trials is the sum
    of its windows', and its status is published."""
    now = timezone.now()
    active = WalkForward.objects.filter(pk=walk_forward_id, status__in=ACTIVE_STATUSES)
    started = active.filter(status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    counts = Optimization.objects.filter(
        walk_forward_window__walk_forward_id=walk_forward_id
    ).aggregate(done=Sum("done_count"), pruned=Sum("pruned_count"), failed=Sum("failed_count"))
    active.update(trials_finished=sum(count or 0 for count in counts.values()))
    walk_forward = active.first()
    if walk_forward is not None:
        publish(walk_forward)
    if started:
        logger.info("walk_forward.started", extra=context(walk_forward_id=walk_forward_id))


def send_window(window_id: int) -> None:
    """Send the window's task; a broker that refuses it is left to the housekeeping, which sends
    it again (``walk_forwards_fail_stale``)."""
    try:
        enqueue_task(WINDOW_TASK, window_id, queue=settings.BACKTESTS_QUEUE)
    except Exception as exc:
        logger.warning(
            "walk_forward.window_enqueue_failed",
            extra=context(window_id=window_id, error=type(exc).__name__),
        )
        return
    WalkForwardWindow.objects.filter(pk=window_id).update(enqueued_at=timezone.now())


def publish(walk_forward: WalkForward) -> None:
    publish_status("walk_forward", walk_forward, walk_forward_status_data(walk_forward))
