"""The bots app's receivers of other apps' signals."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry

from accounts.models import User
from accounts.signals import Ended
from bots.models import Bot
from bots.services.lifecycle import bots_kill

ACTIVE = (Bot.Status.RUNNING, Bot.Status.STOPPING, Bot.Status.ERROR)  # what a kill stops


def stop_the_disabled_users_bots(sender: Any, *, user: User, by: User, **kwargs: Any) -> Ended:
    """``accounts.signals.user_disabled``: the kill switch for the user's bots, with a LogEntry
    on each bot it moved to ``stopping`` (the staff member's audit trail)."""
    before = list(Bot.objects.filter(user=user, status__in=ACTIVE).values_list("pk", flat=True))
    if before:
        bots_kill(user=user, by=by)
    moved = Bot.objects.filter(pk__in=before).exclude(status=Bot.Status.RUNNING)
    LogEntry.objects.log_actions(
        user_id=by.pk, queryset=moved, action_flag=CHANGE,
        change_message=f"Stopped: its owner {user.email} was disabled.",
    )  # fmt: skip
    count = moved.count()
    return Ended(field="bots_stopped", count=count, summary=f"{count} bot(s) stopping")
