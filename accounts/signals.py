"""The accounts app's own signal, ``user_disabled``, and its receivers of Django's auth signals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import Signal, receiver

from tradingbot.events import revoke_connections_now, session_group

user_disabled = Signal()
"""Sent by ``accounts.services.user_disable`` inside its transaction, with ``user`` (the user
disabled) and ``by`` (the staff member). The apps that run things for a user stop them here
(``bots`` stops the user's bots), so that accounts imports none of them; each receiver returns
what it ended, as an :class:`Ended`."""


@dataclass(frozen=True)
class Ended:
    """What one receiver of ``user_disabled`` ended: ``count`` goes to the log line under
    ``field`` (``bots_stopped``), ``summary`` into the audit trail ("2 bot(s) stopping")."""

    field: str
    count: int
    summary: str


@receiver(user_logged_out)
def close_the_sessions_live_connections(sender: Any, request: Any, **kwargs: Any) -> None:
    """A logged-out page must stop receiving the user's events: close its WebSockets (4401).
    Django sends this signal before it flushes the session, so the key is still the old one."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        revoke_connections_now(session_group(session_key))
