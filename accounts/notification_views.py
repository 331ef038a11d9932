"""The trader's notification channels page: list (status, and why a channel fails), add,
remove, send a test. The URL is never shown again, only its scheme."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import delivery, notifications
from accounts.authentication import AuthenticatedHttpRequest
from accounts.forms import NotificationChannelForm
from accounts.models import NotificationChannel
from accounts.notification_kinds import KINDS
from tradingbot.errors import AppError
from tradingbot.forms import add_app_error


def _kinds_for(request: AuthenticatedHttpRequest) -> dict[str, str]:
    allowed = notifications.default_kinds(request.user)
    return {k: label for k, label in KINDS.items() if k in allowed}


@login_required
@require_http_methods(["GET", "POST"])
def channels_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = NotificationChannelForm(request.POST or None, kinds=_kinds_for(request))
    if request.method == "POST" and form.is_valid():
        try:
            channel = notifications.channel_create(user=request.user, **form.cleaned_data)
        except AppError as error:
            add_app_error(form, error)
        else:
            messages.success(request, f"Channel “{channel.name}” added.")
            return redirect("accounts:notification-channels")
    channels = NotificationChannel.objects.filter(user=request.user)
    context = {"form": form, "channels": channels, "kinds": KINDS}
    return render(request, "accounts/notification_channels.html", context,
                  status=400 if form.errors else 200)  # fmt: skip


@login_required
@require_POST
def channel_delete_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(NotificationChannel, user=request.user, pk=pk)
    notifications.channel_delete(channel=channel)
    messages.success(request, f"Channel “{channel.name}” removed.")
    return redirect("accounts:notification-channels")


@login_required
@require_POST
def channel_test_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(NotificationChannel, user=request.user, pk=pk)
    row = delivery.channel_send_test(channel=channel)
    if row.status == "sent":
        messages.success(request, f"Test message sent to “{channel.name}”.")
    else:
        messages.error(request, f"Test message to “{channel.name}” failed: {row.last_error}")
    return redirect("accounts:notification-channels")
