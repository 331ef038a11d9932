"""Server-rendered pages: backtests, sweeps, optimisations, walk-forwards and schedules."""

from django.urls import path

from backtests import optimization_views, views, walk_forward_views

app_name = "backtests"

urlpatterns = [
    path("backtests/", views.backtest_list_view, name="backtest-list"),
    path("backtests/new/", views.backtest_create_view, name="backtest-create"),
    path("backtests/<int:pk>/", views.backtest_detail_view, name="backtest-detail"),
    path("backtests/<int:pk>/cancel/", views.backtest_cancel_view, name="backtest-cancel"),
    path("strategies/<slug:key>/check/", views.strategy_check_view, name="strategy-check"),
    path("sweeps/", views.sweep_list_view, name="sweep-list"),
    path("sweeps/new/", views.sweep_create_view, name="sweep-create"),
    path("sweeps/<int:pk>/", views.sweep_detail_view, name="sweep-detail"),
    path("sweeps/<int:pk>/cancel/", views.sweep_cancel_view, name="sweep-cancel"),
    path(
        "sweeps/<int:pk>/runs/<int:seq>/backtest/",
        views.sweep_run_backtest_view,
        name="sweep-run-backtest",
    ),
    path("optimizations/", optimization_views.optimization_list_view, name="optimization-list"),
    path(
        "optimizations/new/",
        optimization_views.optimization_create_view,
        name="optimization-create",
    ),
    path(
        "optimizations/<int:pk>/",
        optimization_views.optimization_detail_view,
        name="optimization-detail",
    ),
    path(
        "optimizations/<int:pk>/cancel/",
        optimization_views.optimization_cancel_view,
        name="optimization-cancel",
    ),
    path(
        "optimizations/<int:pk>/rerun/",
        optimization_views.optimization_rerun_view,
        name="optimization-rerun",
    ),
    path(
        "optimizations/<int:pk>/delete/",
        optimization_views.optimization_delete_view,
        name="optimization-delete",
    ),
    path(
        "optimizations/<int:pk>/trials/<int:number>/backtest/",
        optimization_views.optimization_trial_backtest_view,
        name="optimization-trial-backtest",
    ),
    path("schedules/", views.schedule_list_view, name="schedule-list"),
    path("schedules/new/", views.schedule_create_view, name="schedule-create"),
    path("schedules/<int:pk>/", views.schedule_detail_view, name="schedule-detail"),
    path("schedules/<int:pk>/pause/", views.schedule_pause_view, name="schedule-pause"),
    path("schedules/<int:pk>/resume/", views.schedule_resume_view, name="schedule-resume"),
    path("schedules/<int:pk>/run/", views.schedule_run_view, name="schedule-run"),
    path("schedules/<int:pk>/edit/", views.schedule_edit_view, name="schedule-edit"),
    path("schedules/<int:pk>/delete/", views.schedule_delete_view, name="schedule-delete"),
    path("walk-forwards/", walk_forward_views.walk_forward_list_view, name="walk-forward-list"),
    path(
        "walk-forwards/new/",
        walk_forward_views.walk_forward_create_view,
        name="walk-forward-create",
    ),
    path(
        "walk-forwards/<int:pk>/",
        walk_forward_views.walk_forward_detail_view,
        name="walk-forward-detail",
    ),
    path(
        "walk-forwards/<int:pk>/cancel/",
        walk_forward_views.walk_forward_cancel_view,
        name="walk-forward-cancel",
    ),
]
