"""Recording what sweep combinations came to, and closing a sweep once none is left to run.

A worker writes the outcomes of several combinations together (:func:`record`: one transaction,
one conditional update per combination and one of the sweep's counters), and so does the stale
check for the combinations of a lost worker. Only combinations still ``running`` are written: a
message delivered twice, or a stale check racing a late worker, records a combination once and
counts it once. Whoever records the last combination closes the sweep (:func:`sweep_finish`),
so a sweep needs no callback task to finish.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backtests import selectors
from backtests.events import sweep_status_data
from backtests.models import ACTIVE_STATUSES, RunStatus, Sweep
from backtests.services import notices, sweep_rows
from backtests.services.runs import PROGRESS_EVERY_SECONDS, publish_status, run_seconds
from tradingbot.logconfig import context
from tradingbot.metrics import SWEEP_DURATION

logger = logging.getLogger(__name__)

_last_progress_event: OrderedDict[int, float] = OrderedDict()
# What a progress event and the check for the last combination read of the sweep.
_PROGRESS_FIELDS = ("user_id", "status", "combination_count", "done_count", "failed_count")


@dataclass(frozen=True)
class Outcome:
    """What one combination came to: its metrics, or the error that stopped it."""

    run_id: int
    metrics: dict[str, Any] | None = None
    error: str = ""


def record(sweep_id: int, outcomes: Sequence[Outcome]) -> list[int]:
    """Write ``outcomes`` (combinations of sweep ``sweep_id``) and count them on the sweep, in
    one transaction; publish the progress (throttled), and close the sweep if these were its last.
    Returns the ids written: those still ``running`` (the others were recorded already).

    One conditional UPDATE per combination (``sweep_rows.finish``): it writes a combination still
    ``running`` only, and a second writer waits for the first's lock, then finds it recorded.
    (Django's ``bulk_update`` builds a CASE per row and field: three times the cost.)
    """
    now = timezone.now()
    written: list[Outcome] = []
    with transaction.atomic():
        for outcome in outcomes:
            if sweep_rows.finish(
                outcome.run_id, metrics=outcome.metrics, error=outcome.error, now=now
            ):
                written.append(outcome)
        if not written:
            return []
        failed = [outcome.run_id for outcome in written if outcome.error]
        Sweep.objects.filter(pk=sweep_id).update(
            done_count=F("done_count") + len(written) - len(failed),
            failed_count=F("failed_count") + len(failed),
            heartbeat_at=now,
        )
        sweep = Sweep.objects.only(*_PROGRESS_FIELDS).get(pk=sweep_id)
        last = sweep.done_count + sweep.failed_count >= sweep.combination_count
        if not last and _progress_event_due(sweep):
            publish(sweep)
    if failed:
        logger.warning(
            "sweep.combinations_failed", extra=context(sweep_id=sweep_id, run_ids=failed)
        )
    if last:
        sweep_finish(sweep_id=sweep_id)
    return [outcome.run_id for outcome in written]


def _progress_event_due(sweep: Sweep) -> bool:
    """At most one progress event per sweep every PROGRESS_EVERY_SECONDS from this process (the
    last one is always sent, by :func:`sweep_finish`): a 1,000-combination sweep must not send
    1,000 events."""
    now = time.monotonic()
    last = _last_progress_event.get(sweep.pk)
    if last is not None and now - last < PROGRESS_EVERY_SECONDS:
        return False
    _last_progress_event[sweep.pk] = now
    _last_progress_event.move_to_end(sweep.pk)
    while len(_last_progress_event) > 100:
        _last_progress_event.popitem(last=False)
    return True


def sweep_finish(*, sweep_id: int) -> str:
    """Rank and close a sweep once no combination is left to run; its status."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().filter(pk=sweep_id).first()
        if sweep is None or sweep.status not in ACTIVE_STATUSES:
            return sweep.status if sweep else "deleted"
        if sweep.runs.filter(status__in=ACTIVE_STATUSES).exists():
            return sweep.status
        all_failed = sweep.done_count == 0
        sweep.status = RunStatus.FAILED if all_failed else RunStatus.DONE
        sweep.error = "Every combination failed; see their errors." if all_failed else ""
        sweep.finished_at = timezone.now()
        sweep.save(update_fields=["status", "error", "finished_at"])
        SWEEP_DURATION.observe(run_seconds(sweep), status=sweep.status)
        publish(sweep)
        notices.sweep_finished(sweep)
    best = selectors.sweep_ranking(sweep=sweep, limit=1)
    logger.info(
        "sweep.finished",
        extra=context(
            sweep_id=sweep.pk,
            status=sweep.status,
            done=sweep.done_count,
            failed=sweep.failed_count,
            rank_by=sweep.rank_by,
            best_params=best[0].params if best else None,
        ),
    )
    return sweep.status


def publish(sweep: Sweep) -> None:
    """``sweep.status`` to the sweep's groups, once the transaction commits."""
    publish_status("sweep", sweep, sweep_status_data(sweep))
