"""The bots app in the Django admin.

Bots are configured by their
owners and changed by staff only through the services: stop (optionally closing the position),
stop every bot of a user, and the kill switch that stops every bot on the platform. A bot's books
(orders, trades, positions, events) are what happened: read-only, and deleted only with their
bot. Every staff action writes an admin ``LogEntry`` on each bot it touched, the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods

from accounts.models import User
from bots import services
from bots.models import Bot, BotEquity, BotEvent, Order, Position, Signal, Trade
from tradingbot.admin_paging import EstimatedCountPaginator
from tradingbot.admin_utils import DeletedWithParentAdmin, changelist_url
from tradingbot.errors import AppError

EMPTY = "—"
ACTIVE_STATUSES = (Bot.Status.RUNNING, Bot.Status.STOPPING, Bot.Status.ERROR)  # what a kill stops


# --- helpers ------------------------------------------------------------------------------------


def _bot_link(bot_id: int, label: str) -> str:
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:bots_bot_change", args=[bot_id]), label
    )


def _epoch_ms(ms: int | None) -> str:
    if ms is None:
        return EMPTY
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _staff(request: HttpRequest) -> User:
    # admin_view lets only active staff in: the user is a real account, not anonymous.
    assert isinstance(request.user, User)
    return request.user


def _short(text: str, length: int = 80) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


# --- bots ---------------------------------------------------------------------------------------


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    """Bots as their owners configured them. Staff do not edit a bot (its open orders and
    position belong to the configuration they were made under); they stop it."""

    list_display = (
        "name", "user", "symbol", "timeframe", "strategy_key", "data_source", "account_mode",
        "state", "last_tick_at", "short_error",
    )  # fmt: skip
    list_filter = ("status", "data_source", "exchange_account__mode", "strategy", "timeframe")
    search_fields = ("name", "user__email", "symbol")
    list_select_related = ("user", "exchange_account")
    actions = ("stop_bots", "stop_bots_and_flatten", "stop_users_bots")
    change_list_template = "bots/admin/bot_change_list.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "user",
                    "status",
                    "state",
                    "last_error",
                    "degraded_since",
                    "degraded_reason",
                    "stop_requested_by",
                    "books",
                )
            },
        ),
        (
            "Market and strategy",
            {
                "fields": (
                    "exchange_account",
                    "symbol",
                    "timeframe",
                    "strategy",
                    "params",
                    "data_source",
                    "replay_start",
                    "replay_speed",
                )
            },
        ),
        (
            "Risk",
            {
                "fields": (
                    "order_size_kind",
                    "order_size",
                    "max_position",
                    "stop_loss_pct",
                    "take_profit_pct",
                    "daily_loss_limit",
                )
            },
        ),
        ("Signals", {"fields": ("signals_enabled", "signal_allowed_ips", "signal_target")}),
        (
            "Ticks",
            {
                "fields": (
                    "last_tick_at",
                    "last_candle",
                    "next_tick_at",
                    "tick_lease_until",
                    "error_streak",
                    "stop_flatten",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a bot is created by its owner, who chooses its exchange account

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_stop_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bots.change_bot")

    # --- columns and fields

    @admin.display(description="strategy", ordering="strategy")
    def strategy_key(self, bot: Bot) -> str:
        return bot.strategy_id

    @admin.display(description="account", ordering="exchange_account__mode")
    def account_mode(self, bot: Bot) -> str:
        return bot.exchange_account.mode

    @admin.display(description="state", ordering="status")
    def state(self, bot: Bot) -> str:
        """The status, or "degraded" for a running bot whose exchange keeps failing."""
        return bot.state

    @admin.display(description="last error")
    def short_error(self, bot: Bot) -> str:
        if bot.is_degraded:
            return _short(f"degraded: {bot.degraded_reason}")
        return _short(bot.last_error) if bot.last_error else EMPTY

    @admin.display(description="replay start")
    def replay_start(self, bot: Bot) -> str:
        return _epoch_ms(bot.replay_start_ms)

    @admin.display(description="last candle acted on")
    def last_candle(self, bot: Bot) -> str:
        return _epoch_ms(bot.last_candle_ms)

    @admin.display(description="books")
    def books(self, bot: Bot) -> str:
        # Links, not inlines: a bot running for weeks holds thousands of events.
        position = bot.positions.filter(symbol=bot.symbol).first()
        held = (
            f"position {position.qty.normalize():f} {bot.symbol}, realised PnL "
            f"{position.pnl.normalize():f}, unrealised {position.unrealized_pnl.normalize():f}"
            if position is not None
            else "no position"
        )
        links = [
            (changelist_url(model, bot__id__exact=bot.pk), label)
            for model, label in ((Order, "orders"), (Trade, "trades"), (BotEvent, "events"))
        ]
        return format_html(
            '{} · <a href="{}">{}</a> · <a href="{}">{}</a> · <a href="{}">{}</a>',
            held,
            *[part for link in links for part in link],
        )

    # --- actions

    @admin.action(description="Stop selected bots", permissions=["stop"])
    def stop_bots(self, request: HttpRequest, queryset: QuerySet[Bot]) -> None:
        self._stop(request, queryset, flatten=False)

    @admin.action(description="Stop selected bots and close their positions", permissions=["stop"])
    def stop_bots_and_flatten(self, request: HttpRequest, queryset: QuerySet[Bot]) -> None:
        self._stop(request, queryset, flatten=True)

    def _stop(self, request: HttpRequest, queryset: QuerySet[Bot], *, flatten: bool) -> None:
        stopped, failed, skipped = [], [], 0
        for bot in queryset.select_related("user"):
            if bot.status == Bot.Status.STOPPED:
                skipped += 1
                continue
            try:
                bot = services.bot_stop(bot=bot, flatten=flatten, by=_staff(request))
            except AppError as error:
                failed.append(f"{bot.name}: {error.message}")
                continue
            if bot.status == Bot.Status.ERROR:  # the stopping tick itself failed
                failed.append(f"{bot.name}: {bot.last_error or 'the stop failed'}")
                continue
            stopped.append(bot)
            closing = " and close its position" if flatten else ""
            self.log_change(request, bot, f"Stopped{closing} (admin action); now {bot.status}.")
            left = bot.orders.filter(status__in=Order.OPEN_STATUSES).exclude(error="").count()
            if left and bot.status == Bot.Status.STOPPED:
                self.message_user(
                    request, f"{bot.name}: stopped, but could not cancel {left} order(s) "
                    "(see its events).", messages.WARNING,
                )  # fmt: skip
        self._report(request, stopped, failed, skipped)

    def _report(self, request: HttpRequest, stopped: list[Bot], failed: list[str],
                skipped: int) -> None:  # fmt: skip
        if stopped:
            still = [bot.name for bot in stopped if bot.status == Bot.Status.STOPPING]
            note = f" ({', '.join(still)} finishing: a tick held it)" if still else ""
            self.message_user(request, f"{len(stopped)} bot(s) stopped{note}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} bot(s) were already stopped.", messages.INFO)
        if failed:
            self.message_user(request, f"{len(failed)} failed: {'; '.join(failed)}", messages.ERROR)

    @admin.action(description="Stop all bots of the selected bots' users", permissions=["stop"])
    def stop_users_bots(self, request: HttpRequest, queryset: QuerySet[Bot]) -> None:
        users = User.objects.filter(pk__in=queryset.values("user_id")).order_by("email")
        total = 0
        for user in users:
            total += self._kill(request, user=user, flatten=False)
        emails = ", ".join(user.email for user in users)
        self.message_user(
            request, f"Kill switch for {emails}: {total} bot(s) stopping.", messages.SUCCESS
        )

    def _kill(self, request: HttpRequest, *, user: User | None, flatten: bool) -> int:
        """``bots_kill`` (which logs the kill itself) with one LogEntry on each bot it moved."""
        active = Bot.objects.filter(status__in=ACTIVE_STATUSES)
        if user is not None:
            active = active.filter(user=user)
        before = set(active.values_list("pk", flat=True))
        count = services.bots_kill(user=user, by=_staff(request), flatten=flatten)
        scope = f"all bots of {user.email}" if user is not None else "all bots"
        closing = ", closing positions" if flatten else ""
        # The bots it moved: active before, stopping (or already stopped by a tick) now. One
        # INSERT for all of them: the kill switch may stop thousands.
        moved = Bot.objects.filter(pk__in=before).exclude(status=Bot.Status.RUNNING)
        LogEntry.objects.log_actions(
            user_id=_staff(request).pk, queryset=moved, action_flag=CHANGE,
            change_message=f"Kill switch ({scope}{closing}).",
        )  # fmt: skip
        return count

    # --- the kill switch of every bot

    def get_urls(self) -> list[URLPattern]:
        kill = self.admin_site.admin_view(require_http_methods(["GET", "POST"])(self.kill_view))
        return [path("kill-switch/", kill, name="bots_bot_kill_switch"), *super().get_urls()]

    def kill_view(self, request: HttpRequest) -> HttpResponse:
        """GET asks to confirm, POST stops every active bot. ``admin_view`` has checked that
        the user is active staff and protects the POST against CSRF."""
        if not self.has_stop_permission(request):
            raise PermissionDenied("Stopping bots needs the change bot permission.")
        if request.method == "POST":
            flatten = request.POST.get("flatten") == "on"
            count = self._kill(request, user=None, flatten=flatten)
            LogEntry.objects.create(
                user_id=_staff(request).pk,
                content_type=ContentType.objects.get_for_model(Bot),
                object_id=None,
                object_repr="all bots",
                action_flag=CHANGE,
                change_message=f"Kill switch: {count} bot(s) stopping"
                + (", closing positions." if flatten else "."),
            )
            self.message_user(request, f"Kill switch: {count} bot(s) stopping.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:bots_bot_changelist"))
        context_data = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Stop every bot",
            "active_count": Bot.objects.filter(status__in=ACTIVE_STATUSES).count(),
        }
        return TemplateResponse(request, "bots/admin/kill_switch.html", context_data)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"can_kill": self.has_stop_permission(request)}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    # --- deleting goes through the service, which refuses an active bot

    def get_deleted_objects(
        self, objs: Iterable[Any], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        """Count the books instead of listing them (a bot may hold thousands of events); an
        active bot is shown as protected, so the confirmation refuses it."""
        bots = list(objs)
        counts = {
            "bots": len(bots),
            "orders": Order.objects.filter(bot__in=bots).count(),
            "trades": Trade.objects.filter(bot__in=bots).count(),
            "events": BotEvent.objects.filter(bot__in=bots).count(),
        }
        active = [f"{bot} — stop it first" for bot in bots if bot.is_active]
        return [str(bot) for bot in bots], counts, set(), active

    def delete_model(self, request: HttpRequest, obj: Bot) -> None:
        services.bot_delete(bot=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Bot]) -> None:
        for bot in queryset:
            try:
                services.bot_delete(bot=bot)
            except AppError as error:  # started since the confirmation page
                self.message_user(request, f"{bot.name}: {error.message}", messages.ERROR)


# --- the books ----------------------------------------------------------------------------------


class BookAdmin(DeletedWithParentAdmin):
    """What a bot did. Read-only; a row is deleted only with its bot (the delete permission
    stays, so deleting a bot or a user still cascades to its books).

    Newest first by the primary key: the tables grow with every tick and have no index on their
    time columns other than per bot, so ordering by time would sort the whole table."""

    deleted_with = "A bot's books are deleted only with the bot."
    ordering = ("-id",)
    paginator = EstimatedCountPaginator

    @admin.display(description="bot", ordering="bot__name")
    def bot_link(self, row: Any) -> str:
        return _bot_link(row.bot_id, row.bot.name)


@admin.register(Order)
class OrderAdmin(BookAdmin):
    list_select_related = ("bot",)
    list_display = (
        "client_order_id", "bot_link", "symbol", "side", "order_type", "price", "qty",
        "filled_qty", "average_price", "fee", "status", "reason", "created_at",
    )  # fmt: skip
    list_filter = ("status", "side", "order_type", "reason")
    search_fields = ("client_order_id", "exchange_order_id", "bot__name", "bot__user__email",
                     "symbol")  # fmt: skip


@admin.register(Trade)
class TradeAdmin(BookAdmin):
    list_display = ("time", "bot_link", "symbol", "side", "qty", "price", "fee", "pnl", "order")
    list_filter = ("side",)
    search_fields = ("bot__name", "bot__user__email", "symbol", "order__client_order_id")
    list_select_related = ("bot", "order")


@admin.register(Position)
class PositionAdmin(BookAdmin):
    list_select_related = ("bot",)
    list_display = (
        "bot_link", "symbol", "qty", "entry_price", "mark_price", "pnl", "unrealized_pnl",
        "updated_at",
    )  # fmt: skip
    search_fields = ("bot__name", "bot__user__email", "symbol")


@admin.register(BotEquity)
class BotEquityAdmin(BookAdmin):
    """The bots' equity curves: a row per candle a bot acted on, on the bot's own clock."""

    list_select_related = ("bot",)
    list_display = ("time", "bot_link", "realised", "unrealised", "equity")
    search_fields = ("bot__name", "bot__user__email")


@admin.register(BotEvent)
class BotEventAdmin(BookAdmin):
    list_select_related = ("bot",)
    list_display = ("time", "bot_link", "level", "kind", "short_message")
    list_filter = ("level",)  # not "kind": its choices would be a DISTINCT over every event
    search_fields = ("bot__name", "bot__user__email", "kind")

    @admin.display(description="message")
    def short_message(self, event: BotEvent) -> str:
        return _short(event.message, 120)


@admin.register(Signal)
class SignalAdmin(BookAdmin):
    """The signals the bots' webhooks received, and what each did."""

    list_select_related = ("bot", "order")
    list_display = (
        "received_at", "bot_link", "signal_id", "action", "target", "outcome", "order",
    )  # fmt: skip
    list_filter = ("outcome", "action")
    search_fields = ("signal_id", "bot__name", "bot__user__email", "order__client_order_id")
