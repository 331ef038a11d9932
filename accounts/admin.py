"""The accounts app in the Django admin.

Staff manage users, and disable one through ``services.user_disable`` (their bots stop, their
tokens, sessions and live connections end), whether with the action or by unticking "active" on
the user's page. API tokens are never shown (only their hash is stored, and that is not shown
either). Every staff action writes an admin ``LogEntry`` on each object it touched, the audit
trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join

from accounts import services
from accounts.models import ApiToken, NotificationChannel, NotificationOutbox, User
from tradingbot.admin_utils import changelist_url
from tradingbot.errors import AppError

EMPTY = "—"
# The bots app's statuses of a bot that still runs or may (accounts imports no other app).
ACTIVE_BOT_STATUSES = ("running", "stopping", "error")


def _staff(request: HttpRequest) -> User:
    # admin_view lets only active staff in: the user is a real account, not anonymous.
    assert isinstance(request.user, User)
    return request.user


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("email",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = (
        "email", "display_name", "is_active", "is_staff", "active_bots", "date_joined",
        "last_login",
    )  # fmt: skip
    list_filter = ("is_active", "is_staff", "is_superuser", "date_joined")
    search_fields = ("email", "display_name")
    readonly_fields = ("date_joined", "last_login", "related")
    actions = ("disable_users", "enable_users")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name", "time_zone")}),
        ("Risk", {"fields": ("max_leverage",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Activity", {"fields": ("related", "date_joined", "last_login")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        active = Count("bots", filter=Q(bots__status__in=ACTIVE_BOT_STATUSES))
        return super().get_queryset(request).annotate(active_bot_count=active)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and obj.pk == request.user.pk:
            return (*fields, "is_active")  # nobody locks themselves out
        return fields

    # --- columns and fields

    @admin.display(description="active bots", ordering="active_bot_count")
    def active_bots(self, user: User) -> int:
        return getattr(user, "active_bot_count", 0)

    @admin.display(description="their things")
    def related(self, user: User) -> str:
        if user.pk is None:
            return EMPTY
        links = [
            (changelist_url("bots_bot", user__id__exact=user.pk), "bots"),
            (changelist_url("markets_exchangeaccount", user__id__exact=user.pk),
             "exchange accounts"),
            (changelist_url("accounts_apitoken", user__id__exact=user.pk), "API tokens"),
            (changelist_url("backtests_backtest", user__id__exact=user.pk), "backtests"),
            (changelist_url("backtests_sweep", user__id__exact=user.pk), "sweeps"),
        ]  # fmt: skip
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    # --- disabling and enabling

    # The change permission, as unticking "active" on the user's page needs: a disabled user's
    # bots are stopped whichever way they were disabled.
    @admin.action(description="Disable selected users and stop their bots", permissions=["change"])
    def disable_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        disabled = 0
        for user in queryset:
            try:
                self._disable(request, user)
            except AppError as error:
                self.message_user(request, f"{user.email}: {error.message}", messages.ERROR)
            else:
                disabled += 1
        if disabled:
            self.message_user(
                request,
                f"{disabled} user(s) disabled; their bots are stopping.",
                messages.SUCCESS,
            )

    def _disable(self, request: HttpRequest, user: User) -> None:
        """``user_disable``, with a LogEntry on the user (the bots app logs each bot it
        stopped)."""
        ended = services.user_disable(user=user, by=_staff(request))
        self.log_change(request, user, f"Disabled (admin action): {ended.summary()}.")

    @admin.action(description="Enable selected users", permissions=["change"])
    def enable_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        enabled = 0
        for user in queryset:
            if services.user_enable(user=user, by=_staff(request)):
                self.log_change(request, user, "Enabled (admin action).")
                enabled += 1
        if not enabled:
            self.message_user(request, "The selected users were active already.", messages.INFO)
            return
        self.message_user(
            request,
            f"{enabled} user(s) enabled; their bots stay stopped until they start them.",
            messages.SUCCESS,
        )

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        """Ticking or unticking "active" on a user's page goes through the services, as the
        actions do: disabling stops the bots and ends the sessions (Django logs the change of
        the user itself; the bots app logs each bot it stopped)."""
        if not (change and "is_active" in form.changed_data):
            super().save_model(request, obj, form, change)
            return
        wanted_active, obj.is_active = obj.is_active, not obj.is_active
        super().save_model(request, obj, form, change)
        if wanted_active:
            services.user_enable(user=obj, by=_staff(request))
            return
        services.user_disable(user=obj, by=_staff(request))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens by owner and age. The key is never stored (only its hash, which is not shown);
    deleting a token revokes it and closes the live connections it opened."""

    list_display = ("id", "user", "created_at", "expires_at", "expired", "last_used_at")
    list_filter = ("created_at", "expires_at")
    search_fields = ("user__email",)
    list_select_related = ("user",)
    fields = ("user", "created_at", "expires_at", "last_used_at")
    readonly_fields = fields

    @admin.display(description="expired", boolean=True)
    def expired(self, token: ApiToken) -> bool:
        return token.is_expired(timezone.now())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # issued to their owner at login, shown to them once

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        services.api_token_revoke(token=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            services.api_token_revoke(token=token)


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    """Users' notification channels: read-only, the URL only masked (it is a secret)."""

    list_display = ("id", "user", "name", "url_masked", "status", "failure_count", "last_sent_at")
    list_filter = ("status", "scheme")
    search_fields = ("user__email", "name")
    list_select_related = ("user",)
    fields = ("user", "name", "url_masked", "kinds", "daily_summary_at", "status",
              "failure_count", "last_error", "last_sent_at", "created_at")  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the owner sets the URL; staff never see it

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(NotificationOutbox)
class NotificationOutboxAdmin(admin.ModelAdmin):
    """The notifications sent or waiting, per channel: read-only."""

    list_display = ("id", "channel", "kind", "key", "status", "attempts", "next_attempt_at",
                    "sent_at")  # fmt: skip
    list_filter = ("status", "kind")
    search_fields = ("key", "channel__user__email")
    list_select_related = ("channel",)
    fields = ("channel", "key", "kind", "title", "body", "status", "attempts",
              "next_attempt_at", "created_at", "sent_at", "last_error")  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
