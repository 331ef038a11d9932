"""Server-rendered pages of the markets app: a trader's exchange accounts (list with their
balances, add, remove, fetch a live account's balances)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.authentication import AuthenticatedHttpRequest
from markets import selectors, services
from markets.forms import ExchangeAccountForm
from tradingbot.errors import AppError
from tradingbot.forms import add_app_error


@login_required
@require_http_methods(["GET", "POST"])
def exchange_accounts_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ExchangeAccountForm(
        request.POST or None, initial={"mode": "paper", "exchange": "bitget"}
    )
    if request.method == "POST" and form.is_valid():
        try:
            account = services.exchange_account_open(user=request.user, **form.account_fields())
        except AppError as error:
            add_app_error(form, error)
        else:
            if account.verification == "unverified":
                messages.warning(
                    request,
                    f"Exchange account “{account.label}” added, unverified: "
                    f"{account.verification_error}. Its keys are checked again before a bot "
                    "starts on it.",
                )
            else:
                messages.success(request, f"Exchange account “{account.label}” added.")
            return redirect("markets:exchange-accounts")
    accounts = list(selectors.exchange_account_list(user=request.user))
    balances = selectors.exchange_account_balances_known(accounts=accounts)
    status = 400 if form.errors else 200
    return render(
        request,
        "markets/exchange_accounts.html",
        {
            "form": form,
            "accounts": [(account, balances[account.pk]) for account in accounts],
            "unverified": any(a.verification == "unverified" for a in accounts),
        },
        status=status,
    )


@login_required
@require_POST
def exchange_account_balance_refresh_view(
    request: AuthenticatedHttpRequest, pk: int
) -> HttpResponse:
    """Fetch a live account's balances from the exchange now (the page shows the last fetch)."""
    account = selectors.exchange_account_get(user=request.user, pk=pk)
    try:
        services.exchange_account_balances(account=account)
    except AppError as error:
        messages.error(request, f"Balances of “{account.label}” not fetched: {error.message}")
    else:
        messages.success(request, f"Balances of “{account.label}” fetched.")
    return redirect("markets:exchange-accounts")


@login_required
@require_POST
def exchange_account_delete_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    account = selectors.exchange_account_get(user=request.user, pk=pk)
    try:
        services.exchange_account_delete(account=account)
    except AppError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Exchange account “{account.label}” removed.")
    return redirect("markets:exchange-accounts")
