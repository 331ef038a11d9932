from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import ApiToken, ExchangeAccount, User


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
    list_display = ("email", "display_name", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "display_name")
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    """Staff see which accounts exist, never their secrets (only the masked API key)."""

    list_display = ("label", "user", "exchange", "mode", "api_key_masked", "created_at")
    list_filter = ("exchange", "mode", "created_at")
    search_fields = ("label", "user__email")
    list_select_related = ("user",)
    fields = ("user", "label", "exchange", "mode", "api_key_masked", "created_at")
    readonly_fields = fields

    @admin.display(description="API key")
    def api_key_masked(self, account: ExchangeAccount) -> str:
        return account.api_key_masked or "—"

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        # Secrets are entered by their owner only, on the exchange-accounts page or the API.
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created_at", "expires_at", "last_used_at")
    list_filter = ("created_at", "expires_at")
    search_fields = ("user__email",)
    list_select_related = ("user",)
    fields = ("user", "created_at", "expires_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False
