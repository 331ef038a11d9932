"""Reads of the strategy catalogue."""

from __future__ import annotations

from django.db.models import QuerySet

from strategies.models import Strategy
from strategies.registry import active


def strategy_list_usable() -> QuerySet[Strategy]:
    """Strategies a trader may use: registered in the code and not disabled by staff."""
    return Strategy.objects.filter(enabled=True, available=True, key__in=active().keys())
