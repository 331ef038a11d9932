"""Reads of the accounts app, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import ExchangeAccount, User


def exchange_account_list(*, user: User) -> QuerySet[ExchangeAccount]:
    return ExchangeAccount.objects.filter(user=user).order_by("label")


def exchange_account_get(*, user: User, pk: int) -> ExchangeAccount:
    """The user's account, or 404: another user's account is indistinguishable from none."""
    return get_object_or_404(ExchangeAccount, user=user, pk=pk)
