"""REST routes of backtests, sweeps, optimisations, walk-forwards and backtest schedules (under
``/api/``)."""

from django.urls import path

from backtests.api import backtests, exports, optimizations, schedules, sweeps, walk_forwards

urlpatterns = [
    path("backtests", backtests.BacktestListCreateApi.as_view(), name="api-backtests"),
    path("backtests/<int:pk>", backtests.BacktestDetailApi.as_view(), name="api-backtest"),
    path(
        "backtests/<int:pk>/trades",
        backtests.BacktestTradesApi.as_view(),
        name="api-backtest-trades",
    ),
    path(
        "backtests/<int:pk>/equity",
        backtests.BacktestEquityApi.as_view(),
        name="api-backtest-equity",
    ),
    path(
        "backtests/<int:pk>/export",
        exports.BacktestExportApi.as_view(),
        name="api-backtest-export",
    ),
    path(
        "backtests/<int:pk>/cancel",
        backtests.BacktestCancelApi.as_view(),
        name="api-backtest-cancel",
    ),
    path(
        "backtests/<int:pk>/rerun", backtests.BacktestRerunApi.as_view(), name="api-backtest-rerun"
    ),
    path("sweeps", sweeps.SweepListCreateApi.as_view(), name="api-sweeps"),
    path("sweeps/<int:pk>", sweeps.SweepDetailApi.as_view(), name="api-sweep"),
    path("sweeps/<int:pk>/cancel", sweeps.SweepCancelApi.as_view(), name="api-sweep-cancel"),
    path(
        "optimizations",
        optimizations.OptimizationListCreateApi.as_view(),
        name="api-optimizations",
    ),
    path(
        "optimizations/<int:pk>",
        optimizations.OptimizationDetailApi.as_view(),
        name="api-optimization",
    ),
    path(
        "optimizations/<int:pk>/cancel",
        optimizations.OptimizationCancelApi.as_view(),
        name="api-optimization-cancel",
    ),
    path(
        "optimizations/<int:pk>/trials",
        optimizations.OptimizationTrialsApi.as_view(),
        name="api-optimization-trials",
    ),
    path(
        "walk-forwards",
        walk_forwards.WalkForwardListCreateApi.as_view(),
        name="api-walk-forwards",
    ),
    path(
        "walk-forwards/<int:pk>",
        walk_forwards.WalkForwardDetailApi.as_view(),
        name="api-walk-forward",
    ),
    path(
        "walk-forwards/<int:pk>/cancel",
        walk_forwards.WalkForwardCancelApi.as_view(),
        name="api-walk-forward-cancel",
    ),
    path(
        "backtest-schedules",
        schedules.ScheduleListCreateApi.as_view(),
        name="api-backtest-schedules",
    ),
    path(
        "backtest-schedules/<int:pk>",
        schedules.ScheduleDetailApi.as_view(),
        name="api-backtest-schedule",
    ),
    path(
        "backtest-schedules/<int:pk>/run",
        schedules.ScheduleRunApi.as_view(),
        name="api-backtest-schedule-run",
    ),
]
