"""Server-rendered pages of the bots: list, form, one bot's page with its books, start and stop."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.authentication import AuthenticatedHttpRequest
from bots import selectors as bot_selectors
from bots import services
from bots.forms import (
    BotForm,
    BotStopForm,
    bot_initial,
    bot_prefill,
    replay_from_stored_start,
    stored_range_of,
)
from bots.models import Bot, BotEvent, Order
from bots.services.signal_access import (
    signal_allow_list_set,
    signal_token_revoke,
    signal_token_rotate,
)
from markets import selectors as market_selectors
from strategies.forms import StrategyParamsForm
from strategies.selectors import strategy_classes_usable
from tradingbot.errors import AppError
from tradingbot.forms import add_error_details

RECENT_ROWS = 20  # trades and events on a bot's page
SIGNAL_ROWS = 10  # received signals on a bot's page


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
    return render(request, "bots/bot_detail.html", _detail_page(request, bot))


def _detail_page(request: AuthenticatedHttpRequest, bot: Bot) -> dict[str, Any]:
    trades = Paginator(bot_selectors.bot_trade_list(bot=bot), RECENT_ROWS)
    page = {
        "bot": bot,
        "places": market_selectors.market_places(
            exchange=bot.exchange_account.exchange, symbol=bot.symbol
        ),
        "chart": bot_selectors.bot_chart(bot),
        "position": bot_selectors.bot_position(bot),
        "open_orders": bot_selectors.bot_order_list(bot=bot, status="open"),
        "trades": trades.get_page(request.GET.get("trades_page")),
        "events": _events(bot),
        "strategy": bot_selectors.bot_strategy_settings(bot),
        "quote": bot.symbol.partition("/")[2].partition(":")[0],
        "order_size_pct": _plain(bot.order_size * 100),
        "plain": {name: _plain(getattr(bot, name)) for name in PLAIN_SETTINGS},
        "replay_start": bot_selectors.epoch_ms_local(bot.replay_start_ms),
        "last_candle": bot_selectors.epoch_ms_local(bot.last_candle_ms),
        "next_tick": bot.next_tick_at if bot.is_active else None,
        "stop_form": BotStopForm(),
        "can_start": bot.status in (Bot.Status.STOPPED, Bot.Status.ERROR),
        "can_stop": bot.status != Bot.Status.STOPPED,
        "uncancelled": [] if bot.is_active else _uncancelled_orders(bot),
        "signals": bot_selectors.bot_signal_list(bot=bot)[:SIGNAL_ROWS],
        "signal_networks": "\n".join(bot.signal_allowed_ips),
    }
    return page


# Settings shown as the trader typed them (2.5, not 2.500).
PLAIN_SETTINGS = ("order_size", "max_position", "stop_loss_pct", "take_profit_pct",
                  "daily_loss_limit", "liquidation_buffer_pct")  # fmt: skip


def _plain(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def _events(bot: Bot) -> list[BotEvent]:
    """The bot's recent log, each message with its candle's time in the trader's time zone."""
    events = list(bot_selectors.bot_event_list(bot=bot)[:RECENT_ROWS])
    for event in events:
        event.local_message = bot_selectors.event_message_local(event)  # type: ignore[attr-defined]
    return events


@login_required
@require_http_methods(["GET", "POST"])
def bot_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _bot_form_page(request, bot=None)


@login_required
@require_http_methods(["GET", "POST"])
def bot_edit_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _bot_form_page(request, bot=bot_selectors.bot_get(user=request.user, pk=pk))


def _bot_form_page(request: AuthenticatedHttpRequest, *, bot: Bot | None) -> HttpResponse:
    """The bot form (create or edit). Each strategy's parameters are a form of their own; only
    the chosen strategy's are read, and the service checks the whole configuration. A new
    bot's form may come prefilled from a link (``bot_prefill``: a backtest, a sweep row)."""
    strategies = strategy_classes_usable()
    initial, values = _initial_values(request, bot, strategies)
    data = request.POST if request.method == "POST" else None
    form = BotForm(
        data, user=request.user, initial=initial,
        strategies=[(key, cls.name) for key, cls in strategies.items()],
    )  # fmt: skip
    chosen = data.get("strategy", "") if data is not None else initial["strategy"]
    param_forms = {
        key: StrategyParamsForm(
            data if key == chosen else None, strategy=cls,
            values=values if key == initial["strategy"] else None,
        )
        for key, cls in strategies.items()
    }  # fmt: skip
    status = 200
    if data is not None:
        params = param_forms.get(chosen)
        form_ok = form.is_valid()
        if form_ok and params is not None and params.is_valid():
            try:
                saved = _bot_save(request, bot, form.config(params.values))
            except AppError as error:
                _attach_bot_errors(form, params, error)
                status = error.status
            else:
                return redirect("bots:bot-detail", pk=saved.pk)
        else:
            status = 400
    page = {
        "bot": bot, "form": form, "param_forms": list(param_forms.values()),
        "has_accounts": market_selectors.exchange_account_list(user=request.user).exists(),
        **_stored_candles(form, request.user),
    }  # fmt: skip
    return render(request, "bots/bot_form.html", page, status=status)


def _initial_values(
    request: AuthenticatedHttpRequest, bot: Bot | None, strategies: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The form's initial values and its strategy's parameters: the bot's, a link's (a new
    bot's page opened with a query), or the defaults."""
    if bot is not None:
        return bot_initial(bot), bot.params
    if request.method == "GET":
        return bot_prefill(request.GET, user=request.user, strategies=strategies)
    return {"strategy": next(iter(strategies), "")}, None


def _stored_candles(form: BotForm, user: Any) -> dict[str, Any]:
    """The stored range of the form's market ("Replay from" defaults to its first candle), and
    every market's with each account's exchange, for bot_form.js to follow the choices."""
    ranges = market_selectors.stored_candle_ranges()
    stored = stored_range_of(form, ranges)
    replay_from_stored_start(form, stored)
    accounts = market_selectors.exchange_account_list(user=user)
    return {
        "stored": stored,
        "candle_ranges": {
            "accounts": {str(account.pk): account.exchange for account in accounts},
            "markets": ranges,
        },
    }


def _bot_save(
    request: AuthenticatedHttpRequest, bot: Bot | None, config: services.BotConfig
) -> Bot:
    if bot is None:
        created = services.bot_create(user=request.user, config=config)
        messages.success(request, f"“{created.name}” created. Start it when you are ready.")
        return created
    updated = services.bot_update(bot=bot, config=config)
    messages.success(request, f"“{updated.name}” saved.")
    return updated


def _attach_bot_errors(form: BotForm, params: StrategyParamsForm, error: AppError) -> None:
    """A service's refusal next to the fields it names: a parameter's on the parameters' form."""
    details = dict(error.details)
    if error.code == "invalid_params":
        params.add_errors(details)
        return
    if "params" in details:
        params.add_errors({"non_field_errors": details.pop("params")})
    add_error_details(form, details)
    if not error.details:
        form.add_error(None, error.message)


@login_required
@require_POST
def bot_start_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Start the bot. A bot on a live account trades real money: the start POST must carry the
    trader's confirmation (``confirm_live``), else the confirmation page is shown, naming the
    account and the market."""
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    confirmed = request.POST.get("confirm_live") in ("on", "true", "1", "yes")
    if bot.is_live_money and not confirmed:
        page = {"bot": bot, "next": request.POST.get("next", "")}
        return render(request, "bots/bot_start_confirm.html", page)
    try:
        bot = services.bot_start(bot=bot, confirm_live=confirmed)
    except AppError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{bot.name}” started.")
    return _back(request, bot)


@login_required
@require_POST
def bot_stop_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    form = BotStopForm(request.POST)
    flatten = form.is_valid() and form.cleaned_data["flatten"]
    try:
        bot = services.bot_stop(bot=bot, flatten=flatten, by=request.user)
    except AppError as error:
        messages.error(request, error.message)
        return _back(request, bot)
    if bot.status == Bot.Status.STOPPED and _uncancelled_orders(bot):
        messages.warning(request, f"“{bot.name}” stopped; some orders could not be cancelled.")
    elif bot.status == Bot.Status.STOPPED:
        messages.success(request, f"“{bot.name}” stopped.")
    elif bot.status == Bot.Status.STOPPING:
        messages.info(request, f"“{bot.name}” is stopping: its tick in progress finishes the stop.")
    else:  # the stopping tick failed; the bot says why
        messages.error(request, f"“{bot.name}” could not stop: {bot.last_error}")
    return _back(request, bot)


@login_required
@require_http_methods(["GET", "POST"])
def bot_close_position_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """ "Close position now": GET asks for the trader's confirmation, naming what will be sold
    or bought back; the confirmation POSTs here and closes the position at market."""
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    position = bot_selectors.bot_position(bot)
    if position is None or position.qty <= 0:
        messages.error(request, "The bot has no open position to close.")
        return redirect("bots:bot-detail", pk=bot.pk)
    if request.method == "GET":
        places = market_selectors.market_places(
            exchange=bot.exchange_account.exchange, symbol=bot.symbol
        )
        page = {"bot": bot, "position": position, "places": places}
        return render(request, "bots/bot_close_confirm.html", page)
    try:
        order = services.bot_close_position(bot=bot, by=request.user)
    except AppError as error:
        messages.error(request, error.message)
    else:
        price = f" at {order.average_price.normalize():f}" if order.average_price else ""
        messages.success(
            request, f"Position closed: {order.side} {order.qty.normalize():f}{price}."
        )
    return redirect("bots:bot-detail", pk=bot.pk)


def _uncancelled_orders(bot: Bot) -> list[Order]:
    """The orders a stop left open (the exchange could not be reached), each with why."""
    return list(bot_selectors.bot_order_list(bot=bot, status="open").exclude(error=""))


def _back(request: AuthenticatedHttpRequest, bot: Bot) -> HttpResponse:
    """Where a start or stop came from: the dashboard's buttons, the bots list's, or the bot's
    page."""
    if request.POST.get("next") == "dashboard":
        return redirect("dashboard")
    if request.POST.get("next") == "list":
        return redirect("bots:bot-list")
    return redirect("bots:bot-detail", pk=bot.pk)


# --- signals in ----------------------------------------------------------------------------------


@login_required
@require_POST
def bot_signal_token_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Make (or replace) the bot's signal webhook token and show it, this once, on the bot's
    page with the webhook's URL and a TradingView alert message (the page is not redirected
    to: the token is never stored, so it could not be shown after a redirect)."""
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    token = signal_token_rotate(bot=bot)
    page = _detail_page(request, bot)
    url = request.build_absolute_uri(reverse("api-signal-receive", args=[token]))
    page.update(signal_token=token, webhook_url=url, alert_example=tradingview_alert(bot))
    return render(request, "bots/bot_detail.html", page)


@login_required
@require_POST
def bot_signal_revoke_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    signal_token_revoke(bot=bot)
    messages.success(request, "Signals disabled: the webhook's token no longer works.")
    return redirect("bots:bot-detail", pk=bot.pk)


@login_required
@require_POST
def bot_signal_allow_list_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The allow-list from the page's text box: networks separated by spaces, commas or lines."""
    bot = bot_selectors.bot_get(user=request.user, pk=pk)
    networks = request.POST.get("networks", "").replace(",", " ").split()
    try:
        saved = signal_allow_list_set(bot=bot, networks=networks)
    except AppError as error:
        messages.error(request, error.message)
    else:
        shown = ", ".join(saved) if saved else "any address"
        messages.success(request, f"Signals are accepted from {shown}.")
    return redirect("bots:bot-detail", pk=bot.pk)


def tradingview_alert(bot: Bot) -> str:
    """The alert message a TradingView strategy can send as it is: its position after the
    order (long, short or flat; a spot bot's short is refused) and a unique id."""
    action = "{{strategy.market_position}}"
    return json.dumps(
        {"action": action, "id": "{{ticker}}-{{interval}}-{{timenow}}", "ticker": "{{ticker}}",
         "price": "{{close}}"}, indent=2,
    )  # fmt: skip
