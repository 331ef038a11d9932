from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from accounts.authentication import AuthenticatedHttpRequest
from bots.forms import BotStopForm
from tradingbot.site import dashboard as selectors


def home(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard" if request.user.is_authenticated else "accounts:login")


@login_required
@require_GET
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    page = {
        "totals": selectors.dashboard_totals(user=request.user),
        "bots": selectors.dashboard_bots(user=request.user),
        "trades": selectors.recent_trades(user=request.user),
        "events": selectors.recent_events(user=request.user),
        "stop_form": BotStopForm(),
    }
    return render(request, "dashboard.html", page)


@login_required
@require_GET
def dashboard_totals(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The totals panel and the accounts table: the dashboard redraws both after a fill or a
    position change, so that every equity on it comes from one read."""
    totals = selectors.dashboard_totals(user=request.user)
    return render(request, "includes/dashboard_refresh.html", {"totals": totals})
