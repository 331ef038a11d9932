from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from strategies import selectors


@login_required
def strategy_list_view(request: HttpRequest) -> HttpResponse:
    return strategy_list_page(request)


def strategy_list_page(
    request: HttpRequest, extra: dict[str, Any] | None = None, *, status: int = 200
) -> HttpResponse:
    """The strategies page, with ``extra`` in its context (a check's result: ``check_key``,
    ``check``, ``check_error``...; see ``templates/strategies/_check.html``)."""
    context = {"strategies": selectors.strategy_list_usable(), **(extra or {})}
    return render(request, "strategies/list.html", context, status=status)
