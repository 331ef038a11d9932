from django.urls import path

from backtests import api

urlpatterns = [
    path("backtests", api.BacktestListCreateApi.as_view(), name="api-backtests"),
    path("backtests/<int:pk>", api.BacktestDetailApi.as_view(), name="api-backtest"),
    path("backtests/<int:pk>/trades", api.BacktestTradesApi.as_view(), name="api-backtest-trades"),
    path("backtests/<int:pk>/equity", api.BacktestEquityApi.as_view(), name="api-backtest-equity"),
    path("backtests/<int:pk>/cancel", api.BacktestCancelApi.as_view(), name="api-backtest-cancel"),
    path("backtests/<int:pk>/rerun", api.BacktestRerunApi.as_view(), name="api-backtest-rerun"),
    path("sweeps", api.SweepListCreateApi.as_view(), name="api-sweeps"),
    path("sweeps/<int:pk>", api.SweepDetailApi.as_view(), name="api-sweep"),
    path("sweeps/<int:pk>/cancel", api.SweepCancelApi.as_view(), name="api-sweep-cancel"),
    path("backtest-schedules", api.ScheduleListCreateApi.as_view(), name="api-backtest-schedules"),
    path(
        "backtest-schedules/<int:pk>",
        api.ScheduleDetailApi.as_view(),
        name="api-backtest-schedule",
    ),
    path(
        "backtest-schedules/<int:pk>/run",
        api.ScheduleRunApi.as_view(),
        name="api-backtest-schedule-run",
    ),
]
