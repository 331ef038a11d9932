"""Server-rendered pages of optimisations: the list, the form, the detail and its actions.

Thin function views as in :mod:`backtests.views`: every optimisation is read through the
owner-scoped selector (another trader's is a 404 on every page and action), every write is one
service call, and a refused form is shown again with the messages next to its fields (400, 429
for the quota) with nothing stored. The detail page's charts are drawn in the browser from the
JSON it embeds (``optimization_page_data``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.authentication import AuthenticatedHttpRequest
from backtests import optimization_selectors as selectors
from backtests import services
from backtests.models import Optimization, RunStatus, TrialState
from backtests.optimization_forms import OptimizationForm
from backtests.optimization_pages import (
    importance_rows,
    optimization_page_data,
    pareto_rows,
    space_rows,
    trial_backtests,
)
from backtests.services.optimization_backtests import optimization_trial_backtest
from backtests.views import _create_page, _page
from tradingbot.errors import AppError

TRIALS_PAGE_SIZE = 50
DETAIL = "backtests:optimization-detail"


@login_required
@require_GET
def optimization_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    status = request.GET.get("status")
    status = status if status in RunStatus.values else None
    found = selectors.optimization_list(user=request.user, status=status)
    context = {"page": _page(request, found), "status": status, "statuses": RunStatus.choices}
    return render(request, "backtests/optimization_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def optimization_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    def created(optimization: Optimization) -> tuple[str, str]:
        message = f"Optimisation #{optimization.pk} queued: {optimization.trial_count} trials."
        return message, DETAIL

    return _create_page(
        request,
        OptimizationForm,
        "backtests/optimization_form.html",
        services.optimization_create,
        created,
    )


@login_required
@require_GET
def optimization_detail_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    optimization = selectors.optimization_get(user=request.user, pk=pk)
    order = request.GET.get("order")
    order = order if order in selectors.TRIAL_ORDERS else "number"
    state = request.GET.get("state")
    state = state if state in TrialState.values else None
    trials = _page(
        request,
        selectors.trial_list(optimization=optimization, state=state, order=order),
        TRIALS_PAGE_SIZE,
    )
    query = "&".join(
        f"{key}={value}" for key, value in (("order", order), ("state", state)) if value
    )
    context: dict[str, Any] = {
        "optimization": optimization,
        "active": optimization.is_active,
        "space": space_rows(optimization),
        "trials": trials,
        "order": order,
        "state": state,
        "states": TrialState.choices,
        "trials_query": query,
        "backtests": trial_backtests(optimization, trials),
        "pareto": pareto_rows(optimization),
        "importances": importance_rows(optimization),
        "page_data": optimization_page_data(optimization),
    }
    return render(request, "backtests/optimization_detail.html", context)


@login_required
@require_POST
def optimization_cancel_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    optimization = selectors.optimization_get(user=request.user, pk=pk)
    was_active = optimization.is_active
    optimization = services.optimization_cancel(optimization=optimization)
    if was_active and optimization.status == RunStatus.CANCELLED:
        messages.success(request, f"Optimisation #{optimization.pk} cancelled.")
    else:
        messages.info(
            request,
            f"Optimisation #{optimization.pk} had already finished ({optimization.status}).",
        )
    return redirect(DETAIL, pk=optimization.pk)


@login_required
@require_POST
def optimization_rerun_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    optimization = selectors.optimization_get(user=request.user, pk=pk)
    try:
        rerun = services.optimization_rerun(optimization=optimization)
    except AppError as error:
        messages.error(request, error.message)
        return redirect(DETAIL, pk=optimization.pk)
    messages.success(request, f"Optimisation #{rerun.pk} queued: a re-run of #{optimization.pk}.")
    return redirect(DETAIL, pk=rerun.pk)


@login_required
@require_POST
def optimization_delete_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    optimization = selectors.optimization_get(user=request.user, pk=pk)
    services.optimization_delete(optimization=optimization)
    messages.success(request, f"Optimisation #{pk} deleted.")
    return redirect("backtests:optimization-list")


@login_required
@require_POST
def optimization_trial_backtest_view(
    request: AuthenticatedHttpRequest, pk: int, number: int
) -> HttpResponse:
    """Open trial ``number`` as a backtest: the existing one, or a new one queued."""
    optimization = selectors.optimization_get(user=request.user, pk=pk)
    try:
        backtest, created = optimization_trial_backtest(optimization=optimization, number=number)
    except AppError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
        return redirect(DETAIL, pk=optimization.pk)
    if created:
        messages.success(request, f"Backtest #{backtest.pk} queued: trial {number}.")
    return redirect("backtests:backtest-detail", pk=backtest.pk)
