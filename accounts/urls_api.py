from django.urls import path

from accounts import api, notification_api

urlpatterns = [
    path("auth/login", api.LoginApi.as_view(), name="api-login"),
    path("auth/logout", api.LogoutApi.as_view(), name="api-logout"),
    path("auth/me", api.MeApi.as_view(), name="api-me"),
    path(
        "notification-channels",
        notification_api.ChannelListCreateApi.as_view(),
        name="api-notification-channels",
    ),
    path(
        "notification-channels/<int:pk>",
        notification_api.ChannelDetailApi.as_view(),
        name="api-notification-channel",
    ),
    path(
        "notification-channels/<int:pk>/test",
        notification_api.ChannelTestApi.as_view(),
        name="api-notification-channel-test",
    ),
]
