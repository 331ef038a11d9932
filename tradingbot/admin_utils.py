"""Admin pieces shared by the apps."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


class DeletedWithParentAdmin(admin.ModelAdmin):
    """Rows that are records of something else (a bot's orders, a backtest's trades): shown
    read-only, never added, and deleted only with their parent. The delete permission stays, so
    deleting the parent (or its user) still cascades to them; only the row's own delete page is
    closed, with ``deleted_with`` saying why."""

    deleted_with = "Deleted only with its parent."
    actions = None
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "show_delete": False}
        )

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        raise PermissionDenied(self.deleted_with)
