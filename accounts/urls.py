from django.urls import path

from accounts import notification_views, views

app_name = "accounts"

urlpatterns = [
    path("accounts/login/", views.login_view, name="login"),
    path("accounts/logout/", views.logout_view, name="logout"),
    path("notifications/", notification_views.channels_view, name="notification-channels"),
    path(
        "notifications/<int:pk>/delete",
        notification_views.channel_delete_view,
        name="notification-channel-delete",
    ),
    path(
        "notifications/<int:pk>/test",
        notification_views.channel_test_view,
        name="notification-channel-test",
    ),
]
