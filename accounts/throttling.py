"""Failed-login throttling: a sliding window of failures per email and per client IP in Redis.

More than ``LOGIN_MAX_FAILURES`` failures within ``LOGIN_FAILURE_WINDOW`` seconds for the same
email (any IP) or the same IP (any email) refuse further attempts, right or wrong, until the
oldest failure leaves the window. Keys hold a hash of the email, never the address itself.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Iterable

import redis
from django.conf import settings

from tradingbot.errors import AppError
from tradingbot.redis import get_redis

KEY_PREFIX = "tb:login-fail:"


def _keys(*, email: str, ip: str | None) -> list[str]:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    keys = [f"{KEY_PREFIX}email:{digest}"]
    if ip:
        keys.append(f"{KEY_PREFIX}ip:{ip}")
    return keys


def _unavailable() -> AppError:
    return AppError(
        "service_unavailable", "Login is temporarily unavailable. Try again shortly.", 503
    )


def check_login_allowed(*, email: str, ip: str | None) -> None:
    """Raise a 429 ``AppError`` with ``Retry-After`` when either key is over its limit."""
    retry_after = max((_retry_after(key) for key in _keys(email=email, ip=ip)), default=0)
    if retry_after > 0:
        raise AppError(
            "too_many_attempts",
            f"Too many failed login attempts. Try again in {retry_after} seconds.",
            429,
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


def _retry_after(key: str) -> int:
    window = settings.LOGIN_FAILURE_WINDOW
    now = time.time()
    try:
        pipe = get_redis().pipeline()
        pipe.zremrangebyscore(key, 0, now - window)
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
        _, count, oldest = pipe.execute()
    except redis.RedisError:
        raise _unavailable() from None
    if count < settings.LOGIN_MAX_FAILURES:
        return 0
    return max(1, math.ceil(oldest[0][1] + window - now))


def record_login_failure(*, email: str, ip: str | None) -> None:
    _record(_keys(email=email, ip=ip))


def _record(keys: Iterable[str]) -> None:
    now = time.time()
    window = settings.LOGIN_FAILURE_WINDOW
    try:
        pipe = get_redis().pipeline()
        for key in keys:
            pipe.zadd(key, {uuid.uuid4().hex: now})
            pipe.zremrangebyscore(key, 0, now - window)
            pipe.expire(key, window)
        pipe.execute()
    except redis.RedisError:
        raise _unavailable() from None


def clear_email_failures(*, email: str) -> None:
    """A successful login forgives the account's failures, not the IP's."""
    try:
        get_redis().delete(_keys(email=email, ip=None)[0])
    except redis.RedisError:
        raise _unavailable() from None
