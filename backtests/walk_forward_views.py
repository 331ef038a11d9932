"""The walk-forward pages: the list, the form, one walk-forward's windows and stitched
out-of-sample result, cancel. Thin views over the owner-scoped selectors and the services, as the
other run pages (``backtests.views``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.authentication import AuthenticatedHttpRequest
from backtests import walk_forward_selectors as selectors
from backtests.models import RunStatus, WalkForward
from backtests.services import walk_forwards as services
from backtests.views import _cancelled, _create_page, _page
from backtests.walk_forward_forms import WalkForwardForm


@login_required
@require_GET
def walk_forward_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    walk_forwards = selectors.walk_forward_list(user=request.user)
    context = {"page": _page(request, walk_forwards)}
    return render(request, "backtests/walk_forward_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def walk_forward_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    def created(walk_forward: WalkForward) -> tuple[str, str]:
        message = (
            f"Walk-forward #{walk_forward.pk} queued: {walk_forward.window_count} windows of "
            f"{walk_forward.trials_per_window} trials."
        )
        return message, "backtests:walk-forward-detail"

    return _create_page(
        request,
        WalkForwardForm,
        "backtests/walk_forward_form.html",
        services.walk_forward_create,
        created,
    )


@login_required
@require_GET
def walk_forward_detail_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    walk_forward = selectors.walk_forward_get(user=request.user, pk=pk)
    context = {
        "walk_forward": walk_forward,
        "active": walk_forward.is_active,
        "windows": selectors.window_list(walk_forward=walk_forward),
        "done": walk_forward.status == RunStatus.DONE,
    }
    return render(request, "backtests/walk_forward_detail.html", context)


@login_required
@require_POST
def walk_forward_cancel_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    walk_forward = selectors.walk_forward_get(user=request.user, pk=pk)
    walk_forward = services.walk_forward_cancel(walk_forward=walk_forward)
    return _cancelled(
        request, walk_forward, kind="Walk-forward", detail="backtests:walk-forward-detail"
    )
