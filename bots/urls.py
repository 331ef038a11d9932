from django.urls import path

from bots import views

app_name = "bots"

urlpatterns = [
    path("bots/", views.bot_list_view, name="bot-list"),
    path("bots/new/", views.bot_create_view, name="bot-create"),
    path("bots/<int:pk>/", views.bot_detail_view, name="bot-detail"),
    path("bots/<int:pk>/edit/", views.bot_edit_view, name="bot-edit"),
    path("bots/<int:pk>/start/", views.bot_start_view, name="bot-start"),
    path("bots/<int:pk>/stop/", views.bot_stop_view, name="bot-stop"),
    path("bots/<int:pk>/close-position/", views.bot_close_position_view, name="bot-close-position"),
    path("bots/<int:pk>/signal-token/", views.bot_signal_token_view, name="bot-signal-token"),
    path(
        "bots/<int:pk>/signal-token/revoke/",
        views.bot_signal_revoke_view,
        name="bot-signal-revoke",
    ),
    path(
        "bots/<int:pk>/signal-allow-list/",
        views.bot_signal_allow_list_view,
        name="bot-signal-allow-list",
    ),
]
