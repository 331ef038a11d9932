"""Render the database schema reference (docs/schema.md) from the models.

Types are Django's portable field types (not one backend's SQL spelling), so the document is the
same whether it is generated on SQLite or PostgreSQL, and a test can compare it byte for byte.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from django.apps import apps
from django.db import models

HEADER = """# Database schema

Generated from the models by `python manage.py schema_doc`; do not edit by hand.
A test fails when this file is stale. Migrations are the single source of truth for the
database itself; `makemigrations --check` runs in CI.

Types are Django field types; `(n)` is a maximum length, `(p,s)` precision and scale.
"""


def render_schema() -> str:
    tables = sorted(_concrete_models(), key=lambda m: m._meta.db_table)
    sections = [HEADER] + [_render_model(model) for model in tables]
    return "\n".join(sections).rstrip() + "\n"


def _concrete_models() -> Iterable[type[models.Model]]:
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.managed and not meta.proxy and not meta.swapped:
            yield model


def _render_model(model: type[models.Model]) -> str:
    meta = model._meta
    lines = [
        f"## `{meta.db_table}`",
        "",
        f"Model `{meta.label}`.",
        "",
        "| column | type | null | key | default |",
        "|---|---|---|---|---|",
    ]
    lines += [_render_column(field) for field in meta.local_concrete_fields]
    indexes = list(_index_lines(model))
    if indexes:
        lines += ["", "Indexes and constraints:", ""] + [f"- {line}" for line in indexes]
    return "\n".join(lines) + "\n"


def _render_column(field: models.Field) -> str:
    return (
        f"| `{field.column}` | {_type_of(field)} | {'yes' if field.null else 'no'} "
        f"| {_key_of(field)} | {_default_of(field)} |"
    )


# A foreign key column stores the target's integer, not an auto-incrementing one.
_AUTO_TO_INTEGER = {
    "AutoField": "IntegerField",
    "BigAutoField": "BigIntegerField",
    "SmallAutoField": "SmallIntegerField",
}


def _type_of(field: models.Field) -> str:
    if isinstance(field, models.ForeignKey):
        target = field.target_field
        return _AUTO_TO_INTEGER.get(target.get_internal_type()) or _type_of(target)
    kind = field.get_internal_type()
    if isinstance(field, models.DecimalField):
        kind += f"({field.max_digits},{field.decimal_places})"
    elif field.max_length:
        kind += f"({field.max_length})"
    if type(field).__name__ != field.get_internal_type():
        kind += f" ({type(field).__name__})"
    return kind


def _key_of(field: models.Field) -> str:
    if field.primary_key:
        return "PK"
    if isinstance(field, models.ForeignKey):
        target = f"{field.related_model._meta.db_table}.{field.target_field.column}"
        on_delete = getattr(field.remote_field.on_delete, "__name__", "")
        return f"FK → `{target}` ({on_delete})"
    if field.unique:
        return "unique"
    if getattr(field, "db_index", False):
        return "index"
    return ""


def _default_of(field: models.Field) -> str:
    if not field.has_default():
        return ""
    default = field.default
    if callable(default):
        return f"`{getattr(default, '__name__', type(default).__name__)}()`"
    if isinstance(default, enum.Enum):
        default = default.value
    return f"`{default!r}`"


def _index_lines(model: type[models.Model]) -> Iterable[str]:
    meta = model._meta
    for together in meta.unique_together:
        yield f"unique ({', '.join(_columns(model, together))})"
    for index in meta.indexes:
        yield f"index `{index.name}` ({', '.join(_columns(model, index.fields))})"
    for constraint in meta.constraints:
        fields = getattr(constraint, "fields", ())
        kind = type(constraint).__name__
        condition = getattr(constraint, "condition", None)
        suffix = f" where {condition}" if condition is not None else ""
        yield f"{kind} `{constraint.name}` ({', '.join(_columns(model, fields))}){suffix}"


def _columns(model: type[models.Model], names: Iterable[str]) -> list[str]:
    columns = []
    for name in names:
        descending = name.startswith("-")
        field = model._meta.get_field(name.lstrip("-"))
        column = getattr(field, "column", field.name)
        columns.append(f"`{column}`{' DESC' if descending else ''}")
    return columns
