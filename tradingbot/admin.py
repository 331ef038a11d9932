"""The staff audit trail in the admin: every admin ``LogEntry``, read-only.

Each staff action writes one entry per object it touched (the apps' admins do, and Django does
for adding, editing and deleting); an object's "History" shows its own, this list shows them all.
Nobody adds, edits or deletes an entry here: an audit trail that staff could rewrite would prove
nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.http import HttpRequest
from django.utils.html import format_html

EMPTY = "—"


@admin.register(LogEntry)
class LogEntryAdmin(admin.ModelAdmin):
    date_hierarchy = "action_time"
    list_display = ("action_time", "user", "action", "content_type", "object_link", "message")
    list_filter = (
        "action_flag",
        ("content_type", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("object_repr", "change_message", "user__email", "=object_id")
    list_select_related = ("user", "content_type")
    show_full_result_count = False
    fields = (
        "action_time", "user", "action", "content_type", "object_id", "object_link", "message",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="action", ordering="action_flag")
    def action(self, entry: LogEntry) -> str:
        if entry.is_addition():
            return "added"
        return "deleted" if entry.is_deletion() else "changed"

    @admin.display(description="object", ordering="object_repr")
    def object_link(self, entry: LogEntry) -> str:
        url = None if entry.is_deletion() else entry.get_admin_url()
        if not url:
            return entry.object_repr or EMPTY
        return format_html('<a href="{}">{}</a>', url, entry.object_repr)

    @admin.display(description="message")
    def message(self, entry: LogEntry) -> str:
        return entry.get_change_message() or EMPTY

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
