"""Celery tasks of the backtests app: thin wrappers around the services.

Backtest and sweep tasks go to ``settings.BACKTESTS_QUEUE`` (the services pass it when they
enqueue). Late acknowledgement plus ``reject_on_worker_lost`` (project-wide) mean a killed worker's
message is delivered again; the services make a second delivery harmless.
"""

from __future__ import annotations

from celery import Task, shared_task

from backtests import services


@shared_task(name="backtests.tasks.run_backtest_task", bind=True, ignore_result=True)
def run_backtest_task(self: Task, backtest_id: int) -> str:
    return services.backtest_execute(backtest_id=backtest_id, worker=self.request.hostname or "")


@shared_task(name="backtests.tasks.run_sweep_combination_task", bind=True)
def run_sweep_combination_task(self: Task, run_id: int) -> str:
    # Its result is kept (briefly): the chord counts finished members through the result backend.
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
    """Every minute (beat): fail backtests and sweep combinations whose worker went silent."""
    return {
        "backtests": services.backtests_fail_stale(),
        "sweep_runs": services.sweeps_fail_stale(),
    }


@shared_task(name="backtests.tasks.requeue_lost_runs_task", ignore_result=True)
def requeue_lost_runs_task() -> dict[str, int]:
    """Every minute (beat): send again the tasks of runs queued for too long (a lost message)."""
    return {
        "backtests": services.backtests_requeue_lost(),
        "sweep_runs": services.sweeps_requeue_lost(),
    }
