from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/login", api.LoginApi.as_view(), name="api-login"),
    path("auth/logout", api.LogoutApi.as_view(), name="api-logout"),
    path("auth/me", api.MeApi.as_view(), name="api-me"),
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
]
