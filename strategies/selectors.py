"""Reads of the strategy catalogue."""

from __future__ import annotations

from django.db.models import QuerySet

from strategies.base import Strategy as StrategyClass
from strategies.models import Strategy
from strategies.registry import active


def strategy_list_usable() -> QuerySet[Strategy]:
    """Strategies a trader may use: registered in the code and not disabled by staff."""
    return Strategy.objects.filter(enabled=True, available=True, key__in=active().keys())


def strategy_list_backtestable() -> list[Strategy]:
    """The usable strategies a backtest can run: not those trading on outside signals."""
    registry = active()
    return [row for row in strategy_list_usable() if registry.get(row.key).backtestable]


def strategy_classes_usable() -> dict[str, type[StrategyClass]]:
    """The usable strategies' classes by key, in the catalogue's order (for forms)."""
    registry = active()
    return {row.key: registry.get(row.key) for row in strategy_list_usable().order_by("name")}
