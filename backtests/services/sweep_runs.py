"""Running sweep combinations in a worker: a batch of them per task.

A task carries the ids of a few combinations of one sweep (``sweeps.batch_size``; a message
sent again by the housekeeping carries one). The worker takes the candles from its process's
cache (:mod:`backtests.services.candle_cache`: read once per sweep, whatever the number of
tasks) and the engine's other inputs once per task, then for each combination in turn:

- claims it by a conditional update (``queued``/``running`` → ``running``; the sweep was
  active when the task read it), so a cancelled sweep's combinations, and the rest of a batch
  cancelled while it runs (a cancel cancels the queued ones), are skipped, and a message
  delivered again after its worker was lost runs only what was not recorded;
- runs the strategy and the engine; an error fails that combination only, never its batch-mates.

The outcomes are written together (:func:`sweep_results.record`), at the end of the task or
once ``PROGRESS_EVERY_SECONDS`` have passed since the last write, so that slow combinations
still show their progress. While the task runs, a heartbeat stamps its running combinations.

A batch keeps within the task's time limit: it starts another combination only if one as long
as its longest so far would still end within half the soft limit, and hands the rest on to a new
task otherwise. A combination that the soft limit interrupts is handed on with them unless it
was the task's first: a combination fails on time only if it alone takes longer than the limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from backtests.models import ACTIVE_STATUSES, RunStatus, Sweep, SweepRun
from backtests.runner import run_backtest
from backtests.services import sweep_rows
from backtests.services.candle_cache import run_candles
from backtests.services.heartbeat import Heartbeat
from backtests.services.runs import EXPECTED_ERRORS, PROGRESS_EVERY_SECONDS, engine_inputs
from backtests.services.sweep_results import Outcome, publish, record
from strategies.registry import active
from tradingbot.logconfig import context
from tradingbot.tasks import enqueue as enqueue_task

logger = logging.getLogger(__name__)

RUNS_TASK = "backtests.tasks.run_sweep_runs_task"
TIME_LIMIT_ERROR = "It took longer than the time limit for a backtest."
CRASH_ERROR = "An unexpected error stopped this combination. It has been logged."


def send_runs(run_ids: Sequence[int]) -> None:
    """Enqueue one task running the combinations ``run_ids`` (of one sweep), in that order.
    ``ignore_result``: the task keeps none, and a sender that does not say so subscribes to the
    result's channel (a round trip to Redis per message)."""
    enqueue_task(RUNS_TASK, list(run_ids), queue=settings.BACKTESTS_QUEUE, ignore_result=True)


def sweep_runs_execute(*, run_ids: Sequence[int], worker: str = "") -> list[str]:
    """Run the combinations ``run_ids`` (the body of ``run_sweep_runs_task``): a combination's
    own error is recorded as its outcome, never raised.
    What each came to, in order: ``done``, ``failed``, ``skipped`` or ``handed_on``."""
    rows = SweepRun.objects.filter(pk__in=run_ids).values_list("pk", "sweep_id", "params")
    by_id = {pk: (sweep_id, _Run(pk, params)) for pk, sweep_id, params in rows}
    sweeps = Sweep.objects.in_bulk({sweep_id for sweep_id, _run in by_id.values()})
    statuses: dict[int, str] = {}
    for sweep_id, sweep in sweeps.items():
        batch = [by_id[pk][1] for pk in run_ids if pk in by_id and by_id[pk][0] == sweep_id]
        statuses |= _Batch(sweep, batch, worker).run()
    return [statuses.get(pk, "skipped") for pk in run_ids]


def sweep_run_execute(*, run_id: int, worker: str = "") -> str:
    """Run one combination (a batch of one); what it came to."""
    return sweep_runs_execute(run_ids=[run_id], worker=worker)[0]


class _Run(NamedTuple):
    """A combination to run: its row's id and parameters."""

    pk: int
    params: dict[str, Any]


class _HandOn(Exception):
    """The soft time limit interrupted a combination that was not its task's first."""


class _Batch:
    """The combinations of one sweep that one task runs."""

    def __init__(self, sweep: Sweep, runs: list[_Run], worker: str) -> None:
        self.runs = runs
        self.sweep = sweep
        self.worker = worker
        self.statuses: dict[int, str] = {}
        self.pending: list[Outcome] = []
        self.started = self.written = time.monotonic()
        self.longest = 0.0
        self.computed = 0
        self.inputs: tuple[Any, dict[str, Any]] | None = None

    def run(self) -> dict[int, str]:
        ids = [run.pk for run in self.runs]
        beating = SweepRun.objects.filter(pk__in=ids, status=RunStatus.RUNNING)
        with Heartbeat(beating, label=f"sweep-{self.sweep.pk}-runs-{ids[0]}"):
            for index, run in enumerate(self.runs):
                if self.computed and self._out_of_time():
                    self._hand_on(self.runs[index:])
                    break
                if not self._claim(run):
                    self.statuses[run.pk] = "skipped"
                    continue
                try:
                    self.pending.append(self._compute(run))
                except _HandOn:
                    self._hand_on(self.runs[index:], interrupted=run)
                    break
                if time.monotonic() - self.written >= PROGRESS_EVERY_SECONDS:
                    self._write()
            self._write()
        return self.statuses

    def _out_of_time(self) -> bool:
        elapsed = time.monotonic() - self.started
        return elapsed + self.longest > settings.CELERY_TASK_SOFT_TIME_LIMIT / 2

    def _claim(self, run: _Run) -> bool:
        """Take ``run`` if it is still to run. Its sweep was active when the batch was read; a
        cancel since then has cancelled the combinations still queued."""
        if self.sweep.status not in ACTIVE_STATUSES:
            return False
        now = timezone.now()
        claimed = sweep_rows.claim(run.pk, worker=self.worker, now=now)
        if claimed and self.sweep.status == RunStatus.QUEUED:
            started = Sweep.objects.filter(pk=self.sweep.pk, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
            )
            self.sweep.status = RunStatus.RUNNING
            if started:
                publish(self.sweep)
        return claimed

    def _compute(self, run: _Run) -> Outcome:
        first = not self.computed
        began = time.monotonic()
        try:
            candles, inputs = self._engine_inputs()
            strategy = active().create(self.sweep.strategy_id, run.params)
            metrics = run_backtest(candles, strategy, **inputs).metrics
        except SoftTimeLimitExceeded:
            if not first:
                raise _HandOn from None
            return Outcome(run.pk, error=TIME_LIMIT_ERROR)
        except EXPECTED_ERRORS as exc:
            return Outcome(run.pk, error=str(exc))
        except Exception:
            logger.exception(
                "sweep.combination_crashed", extra=context(sweep_id=self.sweep.pk, run_id=run.pk)
            )
            return Outcome(run.pk, error=CRASH_ERROR)
        finally:
            self.computed += 1
            self.longest = max(self.longest, time.monotonic() - began)
        return Outcome(run.pk, metrics=metrics)

    def _engine_inputs(self) -> tuple[Any, dict[str, Any]]:
        """The candles and the engine's other inputs, the same for every combination."""
        if self.inputs is None:
            candles = run_candles(self.sweep)
            self.inputs = candles, engine_inputs(self.sweep, candles)
        return self.inputs

    def _write(self) -> None:
        outcomes, self.pending = self.pending, []
        written = set(record(self.sweep.pk, outcomes))
        for outcome in outcomes:
            if outcome.run_id in written:
                self.statuses[outcome.run_id] = "failed" if outcome.error else "done"
            else:
                self.statuses[outcome.run_id] = "skipped"
        self.written = time.monotonic()

    def _hand_on(self, rest: list[_Run], *, interrupted: _Run | None = None) -> None:
        """Send ``rest`` (not started, or ``interrupted`` by the time limit) to a new task."""
        now = timezone.now()
        if interrupted is not None:
            SweepRun.objects.filter(pk=interrupted.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.QUEUED, enqueued_at=now
            )
        ids = [run.pk for run in rest]
        SweepRun.objects.filter(pk__in=ids, status=RunStatus.QUEUED).update(enqueued_at=now)
        self.statuses |= dict.fromkeys(ids, "handed_on")
        try:
            send_runs(ids)
        except Exception as exc:  # still queued: the requeue of lost messages sends them
            logger.warning(
                "sweep.hand_on_failed",
                extra=context(sweep_id=self.sweep.pk, run_ids=ids, error=type(exc).__name__),
            )
            return
        logger.info("sweep.handed_on", extra=context(sweep_id=self.sweep.pk, run_ids=ids))
