"""Celery tasks of the backtests app: thin wrappers around the services.

Backtest and sweep tasks go to ``settings.BACKTESTS_QUEUE`` (the services pass it when they
enqueue). Late acknowledgement plus ``reject_on_worker_lost`` (project-wide) mean a killed worker's
message is delivered again; the services make a second delivery harmless. When a worker starts
(``worker_ready``, connected in ``BacktestsConfig.ready``), it sends again at once the runs whose
message is gone.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from backtests import services
from backtests.services.optimization_trials import optimization_work
from backtests.services.walk_forward_windows import (
    walk_forward_finish,
    walk_forward_window_run,
    walk_forwards_fail_stale,
)
from tradingbot import broker
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)
_boot: dict[str, datetime] = {}


@shared_task(name="backtests.tasks.run_backtest_task", bind=True, ignore_result=True)
def run_backtest_task(self: Task, backtest_id: int) -> str:
    return services.backtest_execute(backtest_id=backtest_id, worker=self.request.hostname or "")


@shared_task(name="backtests.tasks.run_sweep_runs_task", bind=True, ignore_result=True)
def run_sweep_runs_task(self: Task, run_ids: list[int]) -> list[str]:
    """A batch of a sweep's combinations (or one, sent again by the housekeeping)."""
    return services.sweep_runs_execute(run_ids=run_ids, worker=self.request.hostname or "")


# Sent by releases before batches (one combination per task, then a chord's callback): kept so
# that the messages still queued at an upgrade run.
@shared_task(name="backtests.tasks.run_sweep_combination_task", bind=True, ignore_result=True)
def run_sweep_combination_task(self: Task, run_id: int) -> str:
    return services.sweep_run_execute(run_id=run_id, worker=self.request.hostname or "")


@shared_task(name="backtests.tasks.finish_sweep_task", ignore_result=True)
def finish_sweep_task(sweep_id: int) -> str:
    return services.sweep_finish(sweep_id=sweep_id)


@shared_task(name="backtests.tasks.run_scheduled_backtest_task", ignore_result=True)
def run_scheduled_backtest_task(schedule_id: int) -> int | None:
    """Fired by beat: create (and enqueue) this schedule's next backtest."""
    backtest = services.schedule_run(schedule_id=schedule_id)
    return backtest.pk if backtest else None


@shared_task(name="backtests.tasks.fail_stale_runs_task", ignore_result=True)
def fail_stale_runs_task() -> dict[str, int]:
    """Every minute (beat): fail the backtests, sweep combinations, optimisation trials and
    walk-forward window runs whose worker went silent."""
    return {
        "backtests": services.backtests_fail_stale(),
        "sweep_runs": services.sweeps_fail_stale(),
        "optimization_trials": services.optimizations_fail_stale(),
        "walk_forward_tasks": walk_forwards_fail_stale(),
    }


@shared_task(name="backtests.tasks.requeue_lost_runs_task", ignore_result=True)
def requeue_lost_runs_task() -> dict[str, int]:
    """Every minute (beat): send again the tasks of runs queued for too long (a lost message)."""
    return {
        "backtests": services.backtests_requeue_lost(),
        "sweep_runs": services.sweeps_requeue_lost(),
        "optimizations": services.optimizations_requeue_lost(),
    }


def note_worker_boot(**_kwargs: Any) -> None:
    """``worker_init``: when this worker process booted (before it takes any message)."""
    _boot["at"] = timezone.now()


def recover_lost_runs(sender: Any = None, **_kwargs: Any) -> dict[str, int]:
    """``worker_ready``: send again at once the runs whose message is gone (a broker that lost
    its data, or this node's previous process killed mid-run), rather than waiting for the
    scheduled requeue. Never stops the worker from starting."""
    worker = getattr(sender, "hostname", "") or ""
    booted_at = _boot.get("at") or timezone.now()
    try:
        held = broker.pending_tasks([settings.BACKTESTS_QUEUE])
        return {
            "backtests": services.backtests_recover(worker=worker, booted_at=booted_at, held=held),
            "sweep_runs": services.sweeps_recover(worker=worker, booted_at=booted_at, held=held),
        }
    except Exception as exc:
        logger.exception("backtests.recover_failed", extra=context(error=type(exc).__name__))
        return {}


@shared_task(name="backtests.tasks.run_optimization_trials_task", bind=True, ignore_result=True)
def run_optimization_trials_task(self: Task, optimization_id: int) -> str:
    return optimization_work(
        optimization_id=optimization_id, worker=self.request.hostname or "", slot=_slot(self)
    )


def _slot(task: Task) -> int:
    """A number that differs between the tasks of one optimisation (it offsets a seeded sampler,
    so that parallel tasks do not draw the same random points)."""
    return int(str(task.request.id or "0").replace("-", "")[:8] or "0", 16)


# --- walk-forwards -----------------------------------------------------------------------------


@shared_task(name="backtests.tasks.run_walk_forward_window_task", bind=True, ignore_result=True)
def run_walk_forward_window_task(self: Task, window_id: int) -> str:
    """A window's optimisation is over: its out-of-sample run (and, the last, the stitching)."""
    return walk_forward_window_run(window_id=window_id, worker=self.request.hostname or "")


@shared_task(name="backtests.tasks.finish_walk_forward_task", ignore_result=True)
def finish_walk_forward_task(walk_forward_id: int) -> str:
    return walk_forward_finish(walk_forward_id=walk_forward_id)
