"""The backtests app: backtests, parameter sweeps and backtest schedules."""

from django.apps import AppConfig


class BacktestsConfig(AppConfig):
    name = "backtests"
    verbose_name = "Backtests"

    def ready(self) -> None:
        """Offer ``backtest:<id>`` and ``sweep:<id>`` on the live connection."""
        from backtests.events import backtest_snapshot, sweep_snapshot
        from tradingbot.live import channels

        channels.register_object_channel("backtest", snapshot=backtest_snapshot)
        channels.register_object_channel("sweep", snapshot=sweep_snapshot)
