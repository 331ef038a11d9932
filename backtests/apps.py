"""The backtests app: backtests, parameter sweeps, optimisations and backtest schedules."""

from django.apps import AppConfig


class BacktestsConfig(AppConfig):
    name = "backtests"
    verbose_name = "Backtests"

    def ready(self) -> None:
        """Offer ``backtest:<id>``, ``sweep:<id>``, ``optimization:<id>`` and
        ``walk_forward:<id>`` on the live connection; a worker that starts sends again the runs
        whose message is gone (``backtests.tasks.recover_lost_runs``)."""
        from celery.signals import worker_init, worker_ready

        from backtests.events import (
            backtest_snapshot,
            optimization_snapshot,
            sweep_snapshot,
            walk_forward_snapshot,
        )
        from backtests.tasks import note_worker_boot, recover_lost_runs
        from tradingbot.live import channels

        channels.register_object_channel("backtest", snapshot=backtest_snapshot)
        channels.register_object_channel("sweep", snapshot=sweep_snapshot)
        channels.register_object_channel("optimization", snapshot=optimization_snapshot)
        channels.register_object_channel("walk_forward", snapshot=walk_forward_snapshot)
        worker_init.connect(note_worker_boot, weak=False, dispatch_uid="backtests.boot")
        worker_ready.connect(recover_lost_runs, weak=False, dispatch_uid="backtests.recover")
