"""Server-rendered pages of the accounts app: login, logout, exchange accounts."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.forms import LoginForm
from tradingbot.errors import AppError


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.method == "GET":
        return redirect("dashboard")
    form = LoginForm(request.POST or None)
    status, headers = 200, dict[str, str]()
    if request.method == "POST" and form.is_valid():
        try:
            user = services.auth_check_credentials(
                request=request,
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
            )
        except AppError as error:
            form.add_error(None, error.message)
            status = error.status if error.status in (429, 503) else 200
            headers = error.headers
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            services.user_time_zone_set(user=user, name=request.POST.get("time_zone", ""))
            return redirect(_safe_next(request))
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    response = render(
        request, "accounts/login.html", {"form": form, "next": next_url}, status=status
    )
    for name, value in headers.items():
        response[name] = value
    return response


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/dashboard/"


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    """GET asks for confirmation (a link can't log anyone out: CSRF); POST logs out."""
    if request.method == "GET":
        if not request.user.is_authenticated:
            return redirect("accounts:login")
        return render(request, "accounts/logout.html")
    logout(request)
    messages.info(request, "You are logged out.")
    return redirect("accounts:login")
