from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from strategies.api import StrategyListApi
from strategies.views import strategy_list_view
from tradingbot import health
from tradingbot.site import metrics, views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/totals/", views.dashboard_totals, name="dashboard-totals"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("markets.urls")),
    path("", include("bots.urls")),
    path("", include("backtests.urls")),
    path("api/", include("accounts.urls_api")),
    path("api/", include("markets.urls_api")),
    path("api/", include("bots.urls_api")),
    path("api/", include("backtests.urls_api")),
    path("api/strategies", StrategyListApi.as_view(), name="api-strategies"),
    path("strategies/", strategy_list_view, name="strategies"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script from a URL, not inline (the Content-Security-Policy).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

handler400 = "tradingbot.errors.bad_request"
handler403 = "tradingbot.errors.permission_denied"
handler404 = "tradingbot.site.error_pages.page_not_found"
handler500 = "tradingbot.site.error_pages.server_error"
