"""Admin pieces shared by the apps."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import reverse


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


def changelist_url(model: str | type[models.Model], **filters: Any) -> str:
    """The admin list of ``model`` (a model class, or its ``<app>_<model>`` name when the app
    may not import it: ``"bots_bot"``), filtered by ``filters``."""
    if not isinstance(model, str):
        model = f"{model._meta.app_label}_{model._meta.model_name}"
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def change_url(obj: models.Model) -> str:
    """The admin page of one object."""
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
