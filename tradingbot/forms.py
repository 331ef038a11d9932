"""Form helpers shared by the apps' pages."""

from __future__ import annotations

from collections.abc import Mapping

from django import forms

from tradingbot.errors import AppError


def add_error_details(form: forms.Form, details: Mapping[str, list[str]]) -> None:
    """A service's 400 ``details`` next to the fields they name (above the form for a name
    the form has no field for)."""
    for name, messages in details.items():
        for message in messages:
            form.add_error(name if name in form.fields else None, message)


def add_app_error(form: forms.Form, error: AppError) -> None:
    """A service's refusal on ``form``: its details next to their fields, or, when it names
    none, its message above the form."""
    add_error_details(form, error.details)
    if not error.details:
        form.add_error(None, error.message)
