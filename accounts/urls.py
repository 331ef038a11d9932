from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("accounts/login/", views.login_view, name="login"),
    path("accounts/logout/", views.logout_view, name="logout"),
    path("exchange-accounts/", views.exchange_accounts_view, name="exchange-accounts"),
    path(
        "exchange-accounts/<int:pk>/delete/",
        views.exchange_account_delete_view,
        name="exchange-account-delete",
    ),
]
