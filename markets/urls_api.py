from django.urls import path

from markets import api

urlpatterns = [
    path(
        "exchange-accounts",
        api.ExchangeAccountListCreateApi.as_view(),
        name="api-exchange-accounts",
    ),
    path(
        "exchange-accounts/<int:pk>",
        api.ExchangeAccountDetailApi.as_view(),
        name="api-exchange-account",
    ),
    path(
        "exchange-accounts/<int:pk>/balance",
        api.ExchangeAccountBalanceApi.as_view(),
        name="api-exchange-account-balance",
    ),
    path("candles", api.CandlesApi.as_view(), name="api-candles"),
]
