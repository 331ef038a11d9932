"""Server-rendered pages: exchange accounts (list, add, remove) and bots (list, one bot's page
with its books, start and stop)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors
from accounts import services as account_services
from bots import selectors as bot_selectors
from bots import services
from bots.forms import BotStopForm, ExchangeAccountForm
from bots.models import Bot
from tradingbot.errors import AppError
from tradingbot.types import AuthenticatedHttpRequest


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
            _attach_errors(form, error)
        else:
            messages.success(request, f"Exchange account “{account.label}” added.")
            return redirect("bots:exchange-accounts")
    accounts = selectors.exchange_account_list(user=request.user)
    status = 400 if form.errors else 200
    return render(
        request,
        "bots/exchange_accounts.html",
        {"form": form, "accounts": accounts},
        status=status,
    )


def _attach_errors(form: ExchangeAccountForm, error: AppError) -> None:
    if not error.details:
        form.add_error(None, error.message)
    for field, field_messages in error.details.items():
        for message in field_messages:
            form.add_error(field if field in form.fields else None, message)


@login_required
@require_POST
def exchange_account_delete_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    account = selectors.exchange_account_get(user=request.user, pk=pk)
    try:
        account_services.exchange_account_delete(account=account)
    except AppError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Exchange account “{account.label}” removed.")
    return redirect("bots:exchange-accounts")


# --- bots ---------------------------------------------------------------------------------------

RECENT_ROWS = 20  # trades and events on a bot's page


@login_required
@require_http_methods(["GET"])
def bot_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    bots = bot_selectors.bot_list(user=request.user).select_related("exchange_account")
    rows = [(bot, bot_selectors.bot_position(bot)) for bot in bots]
    return render(request, "bots/bot_list.html", {"rows": rows})


@login_required
@require_http_methods(["GET"])
def bot_detail_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    page = {
        "bot": bot,
        "position": bot_selectors.bot_position(bot),
        "open_orders": bot_selectors.bot_order_list(bot=bot, status="open"),
        "trades": bot_selectors.bot_trade_list(bot=bot)[:RECENT_ROWS],
        "events": bot_selectors.bot_event_list(bot=bot)[:RECENT_ROWS],
        "stop_form": BotStopForm(),
        "can_start": bot.status in (Bot.Status.STOPPED, Bot.Status.ERROR),
        "can_stop": bot.status != Bot.Status.STOPPED,
    }
    return render(request, "bots/bot_detail.html", page)


@login_required
@require_POST
def bot_start_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    try:
        bot = services.bot_start(bot=bot)
    except AppError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{bot.name}” started.")
    return redirect("bots:bot-detail", pk=bot.pk)


@login_required
@require_POST
def bot_stop_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    form = BotStopForm(request.POST)
    flatten = form.is_valid() and form.cleaned_data["flatten"]
    try:
        bot = services.bot_stop(bot=bot, flatten=flatten)
    except AppError as error:
        messages.error(request, error.message)
        return redirect("bots:bot-detail", pk=bot.pk)
    if bot.status == Bot.Status.STOPPED:
        messages.success(request, f"“{bot.name}” stopped.")
    elif bot.status == Bot.Status.STOPPING:
        messages.info(request, f"“{bot.name}” is stopping: its tick in progress finishes the stop.")
    else:  # the stopping tick failed; the bot says why
        messages.error(request, f"“{bot.name}” could not stop: {bot.last_error}")
    return redirect("bots:bot-detail", pk=bot.pk)
