"""The backtests app: backtests, parameter sweeps and backtest schedules."""

from django.apps import AppConfig


class BacktestsConfig(AppConfig):
    name = "backtests"
    verbose_name = "Backtests"
