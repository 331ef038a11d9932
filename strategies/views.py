from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from strategies import selectors
from tradingbot.types import AuthenticatedHttpRequest


@login_required
def strategy_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "strategies/list.html", {"strategies": selectors.strategy_list_usable()})
