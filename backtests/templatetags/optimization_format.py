"""``{{ value|objective_value:objective }}`` and ``{{ objective|objective_label }}``: an
optimisation's objective and its values as its page reads them
(``backtests.optimization_pages``)."""

from __future__ import annotations

from typing import Any

from django import template

from backtests import optimization_pages
from backtests.templatetags.backtests_format import MISSING, percent

register = template.Library()


@register.filter
def objective_value(value: Any, objective: dict[str, float]) -> str:
    """A value of ``objective`` (``{metric: weight}``): a percentage for a return, else a
    number with four significant digits."""
    if value is None or value == "":
        return MISSING
    if optimization_pages.value_kind(objective) == "percent":
        return percent(value)
    return f"{float(value):.4g}"


@register.filter
def objective_label(objective: dict[str, float]) -> str:
    return optimization_pages.objective_label(objective)


@register.filter
def value_kind(objective: dict[str, float]) -> str:
    """``percent`` or ``number``: how the page's scripts write the objective's values."""
    return optimization_pages.value_kind(objective)
