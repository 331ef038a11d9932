from django.urls import path

from markets import views

app_name = "markets"

urlpatterns = [
    path("exchange-accounts/", views.exchange_accounts_view, name="exchange-accounts"),
    path(
        "exchange-accounts/<int:pk>/balance/",
        views.exchange_account_balance_refresh_view,
        name="exchange-account-balance-refresh",
    ),
    path(
        "exchange-accounts/<int:pk>/delete/",
        views.exchange_account_delete_view,
        name="exchange-account-delete",
    ),
]
