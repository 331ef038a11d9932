from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts import selectors as account_selectors
from tradingbot.types import AuthenticatedHttpRequest


def home(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard" if request.user.is_authenticated else "accounts:login")


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    accounts = account_selectors.exchange_account_list(user=request.user)
    return render(request, "dashboard.html", {"accounts": accounts})
