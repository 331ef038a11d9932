from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from strategies import selectors


@login_required
def strategy_list_view(request: HttpRequest) -> HttpResponse:
    return render(request, "strategies/list.html", {"strategies": selectors.strategy_list_usable()})
