"""Receivers of Django's auth signals."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from tradingbot.events import revoke_connections_now, session_group


@receiver(user_logged_out)
def close_the_sessions_live_connections(sender: Any, request: Any, **kwargs: Any) -> None:
    """A logged-out page must stop receiving the user's events: close its WebSockets (4401).
    Django sends this signal before it flushes the session, so the key is still the old one."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        revoke_connections_now(session_group(session_key))
