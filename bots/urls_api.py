from django.urls import path

from bots import api, api_books, api_chart, api_control, api_performance, api_signals

urlpatterns = [
    path("bots", api.BotListCreateApi.as_view(), name="api-bots"),
    path("bots/<int:pk>", api.BotDetailApi.as_view(), name="api-bot"),
    path("bots/<int:pk>/start", api.BotStartApi.as_view(), name="api-bot-start"),
    path("bots/<int:pk>/stop", api.BotStopApi.as_view(), name="api-bot-stop"),
    path(
        "bots/<int:pk>/close-position",
        api_control.BotClosePositionApi.as_view(),
        name="api-bot-close-position",
    ),
    path("bots/<int:pk>/chart", api_chart.BotChartApi.as_view(), name="api-bot-chart"),
    path("bots/<int:pk>/positions", api_books.BotPositionsApi.as_view(), name="api-bot-positions"),
    path("bots/<int:pk>/orders", api_books.BotOrdersApi.as_view(), name="api-bot-orders"),
    path("bots/<int:pk>/trades", api_books.BotTradesApi.as_view(), name="api-bot-trades"),
    path("bots/<int:pk>/events", api_books.BotEventsApi.as_view(), name="api-bot-events"),
    path("bots/<int:pk>/equity", api_performance.BotEquityApi.as_view(), name="api-bot-equity"),
    path(
        "bots/<int:pk>/signal-token",
        api_signals.SignalTokenApi.as_view(),
        name="api-bot-signal-token",
    ),
    path(
        "bots/<int:pk>/signal-allow-list",
        api_signals.SignalAllowListApi.as_view(),
        name="api-bot-signal-allow-list",
    ),
    path("bots/<int:pk>/signals", api_signals.BotSignalsApi.as_view(), name="api-bot-signals"),
    path("signals/<str:token>", api_signals.SignalReceiveApi.as_view(), name="api-signal-receive"),
    path("performance", api_performance.PerformanceApi.as_view(), name="api-performance"),
]
