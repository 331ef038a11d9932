from __future__ import annotations

from typing import Any

from django.contrib import admin

from strategies.models import Strategy


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin):
    """Staff enable or disable strategies; everything else comes from the code."""

    list_display = ("key", "name", "enabled", "available", "synced_at")
    list_filter = ("enabled", "available")
    list_editable = ("enabled",)
    search_fields = ("key", "name", "description")
    fields = ("key", "name", "description", "params_schema", "enabled", "available", "synced_at")
    readonly_fields = ("key", "name", "description", "params_schema", "available", "synced_at")

    def has_add_permission(self, request: Any) -> bool:
        return False
