"""Reads of walk-forwards, always scoped to their owner (another user's is a 404)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from backtests.models import WalkForward, WalkForwardWindow


def walk_forward_list(
    *, user: User, status: str | None = None, strategy: str | None = None
) -> QuerySet[WalkForward]:
    """The user's walk-forwards, newest first, optionally filtered."""
    found = WalkForward.objects.filter(user=user).order_by("-created_at", "-id")
    if status:
        found = found.filter(status=status)
    if strategy:
        found = found.filter(strategy_id=strategy)
    return found


def walk_forward_get(*, user: User, pk: int) -> WalkForward:
    return get_object_or_404(WalkForward, user=user, pk=pk)


def window_list(*, walk_forward: WalkForward) -> QuerySet[WalkForwardWindow]:
    """The walk-forward's windows in time order, with their optimisations (one query)."""
    return walk_forward.windows.select_related("optimization").order_by("index")
