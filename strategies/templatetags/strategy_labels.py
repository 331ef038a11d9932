"""``{{ strategy_key|param_label:name }}``: a parameter's human label on any page."""

from __future__ import annotations

from django import template

from strategies.registry import UnknownStrategyError, active

register = template.Library()


@register.filter
def param_label(strategy_key: str, name: str) -> str:
    """The parameter's ``display_name``; the name itself when the strategy or the parameter is
    no longer registered (an old run's)."""
    try:
        params = active().get(strategy_key).params
    except UnknownStrategyError:
        return name
    return next((param.display_name for param in params if param.name == name), name)
