"""Writes and business operations of the accounts app. Keyword-only, typed, transactional."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, authenticate
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import throttling
from accounts.models import ApiToken, User, is_time_zone
from accounts.signals import Ended, user_disabled
from tradingbot.errors import AppError
from tradingbot.events import revoke_connections_now, token_group, user_group
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid email or password"


def client_ip(request: HttpRequest) -> str | None:
    """The TCP peer, or the client a trusted proxy forwarded for (tradingbot/proxy.py)."""
    return request.META.get("REMOTE_ADDR") or None


def auth_check_credentials(*, request: HttpRequest | None, email: str, password: str) -> User:
    """Authenticate or raise: 429 when throttled, 401 ``invalid_credentials`` when wrong.

    The throttle is checked first, so a locked-out email cannot be probed even with the right
    password. A success forgives the email's failures.
    """
    ip = client_ip(request) if request is not None else None
    throttling.check_login_allowed(email=email, ip=ip)
    user = authenticate(request, email=email.strip(), password=password)
    if user is None:
        throttling.record_login_failure(email=email, ip=ip)
        logger.info("auth.login_failed", extra=context(ip=ip))
        raise AppError("invalid_credentials", INVALID_CREDENTIALS, 401)
    throttling.clear_email_failures(email=email)
    logger.info("auth.login", extra=context(user_id=user.pk, ip=ip))
    return user


@dataclass(frozen=True)
class IssuedToken:
    key: str
    token: ApiToken


def api_token_issue(*, user: User) -> IssuedToken:
    """Create a token; the plaintext key is returned once and only its hash is stored."""
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        key_hash=ApiToken.hash_key(key),
        expires_at=timezone.now() + settings.API_TOKEN_TTL,
    )
    logger.info("auth.token_issued", extra=context(user_id=user.pk, token_id=token.pk))
    return IssuedToken(key=key, token=token)


# Record use at most once a minute per token: no write on every API request.
TOKEN_LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_token_authenticate(*, key: str) -> tuple[User, ApiToken] | None:
    """The active user and unexpired token that ``key`` is, or None."""
    token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
    now = timezone.now()
    if token is None or token.is_expired(now) or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at > TOKEN_LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token


def api_token_holder(key: str) -> tuple[User, int] | None:
    """The user and token id that API token ``key`` is, or None (the live connection's check)."""
    found = api_token_authenticate(key=key)
    return None if found is None else (found[0], found[1].pk)


def api_token_revoke(*, token: ApiToken) -> None:
    """Delete the token; its live connections are closed once that commits."""
    ApiToken.objects.filter(pk=token.pk).delete()
    token_id = token.pk
    transaction.on_commit(lambda: revoke_connections_now(token_group(token_id)))
    logger.info("auth.token_revoked", extra=context(user_id=token.user_id, token_id=token.pk))


def auth_cleanup_expired(*, now: datetime | None = None) -> dict[str, int]:
    """Delete expired sessions and API tokens. Safe to run concurrently and repeatedly."""
    now = now or timezone.now()
    sessions, _ = Session.objects.filter(expire_date__lt=now).delete()
    tokens, _ = ApiToken.objects.filter(expires_at__lte=now).delete()
    logger.info("auth.cleanup", extra=context(sessions_deleted=sessions, tokens_deleted=tokens))
    return {"sessions": sessions, "tokens": tokens}


@dataclass(frozen=True)
class UserDisabled:
    """What disabling a user ended."""

    ended: list[Ended]  # what the apps stopped (``user_disabled``'s receivers: the bots)
    tokens_revoked: int
    sessions_ended: int

    def summary(self) -> str:
        return ", ".join(
            [*(item.summary for item in self.ended),
             f"{self.tokens_revoked} API token(s) revoked",
             f"{self.sessions_ended} session(s) ended"]
        )  # fmt: skip


def user_disable(*, user: User, by: User) -> UserDisabled:
    """Disable ``user``: no login, no API token, no session, no live connection, nothing running.

    In one transaction: the account is deactivated; the apps stop what runs for the user
    (``user_disabled``: the bots app's kill switch moves every active bot of the user to
    ``stopping``, and each bot's own next tick, within seconds, cancels its open orders;
    positions stay open); every API token and every session of the user is deleted. Once that
    commits, the user's WebSockets are closed (4401). Disabling a disabled user again ends
    whatever was left. Staff cannot disable themselves (400 ``cannot_disable_self``).
    """
    if user.pk == by.pk:
        raise AppError("cannot_disable_self", "You cannot disable your own account.", 400)
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        replies: list[tuple[Any, Any]] = user_disabled.send(sender=User, user=user, by=by)
        ended = [found for _, found in replies if isinstance(found, Ended)]
        tokens_revoked = ApiToken.objects.filter(user=user).delete()[0]
        sessions_ended = _user_sessions_delete(user_id=user.pk)
        group = user_group(user.pk)
        transaction.on_commit(lambda: revoke_connections_now(group))
    counts = {item.field: item.count for item in ended}
    logger.info(
        "user.disabled",
        extra=context(
            user_id=user.pk, by_user_id=by.pk, **counts,
            tokens_revoked=tokens_revoked, sessions_ended=sessions_ended,
        ),
    )  # fmt: skip
    return UserDisabled(ended=ended, tokens_revoked=tokens_revoked, sessions_ended=sessions_ended)


def _user_sessions_delete(*, user_id: int) -> int:
    """Delete the user's sessions. The user id is inside the encoded session data, so every
    unexpired session is decoded: acceptable for a rare staff action, not for a hot path."""
    now = timezone.now()
    keys = [
        session.session_key
        for session in Session.objects.filter(expire_date__gt=now).iterator()
        if session.get_decoded().get(SESSION_KEY) == str(user_id)
    ]
    return Session.objects.filter(session_key__in=keys).delete()[0] if keys else 0


def user_enable(*, user: User, by: User) -> bool:
    """Let a disabled user log in again; False when the user was active already. Their bots
    stay stopped (the owner starts them again) and their old tokens stay revoked."""
    enabled = User.objects.filter(pk=user.pk, is_active=False).update(is_active=True)
    user.is_active = True
    if enabled:
        logger.info("user.enabled", extra=context(user_id=user.pk, by_user_id=by.pk))
    return bool(enabled)


@transaction.atomic
def demo_users_seed(
    *, trader_email: str, trader_password: str, staff_email: str, staff_password: str
) -> User:
    """Create or refresh the demo trader and a staff user, with these passwords."""
    trader = _user_with_password(email=trader_email, password=trader_password, is_staff=False)
    _user_with_password(email=staff_email, password=staff_password, is_staff=True)
    return trader


def _user_with_password(*, email: str, password: str, is_staff: bool) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User(email=email, is_staff=is_staff, is_superuser=is_staff)
    user.set_password(password)
    user.save()
    return user


def user_time_zone_set(*, user: User, name: str) -> bool:
    """Keep the trader's time zone (an IANA name from the browser); an unknown name is ignored.
    True when it changed."""
    if not name or name == user.time_zone or not is_time_zone(name):
        return False
    user.time_zone = name
    user.save(update_fields=["time_zone"])
    logger.info("user.time_zone_set", extra=context(user_id=user.pk, time_zone=name))
    return True
