"""``GET /healthz``: is this process able to reach the database and Redis?"""

from __future__ import annotations

import logging

import redis
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from tradingbot.logconfig import context
from tradingbot.redis import get_redis

logger = logging.getLogger(__name__)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        return False


def _redis_ok() -> bool:
    try:
        return bool(get_redis().ping())
    except (redis.RedisError, OSError):
        return False


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    parts = {"database": _database_ok(), "redis": _redis_ok()}
    body = {"status": "ok" if all(parts.values()) else "error"}
    body.update({name: "ok" if ok else "unavailable" for name, ok in parts.items()})
    if not all(parts.values()):
        failing = [name for name, ok in parts.items() if not ok]
        logger.warning("health.degraded", extra=context(failing=",".join(failing)))
        return JsonResponse(body, status=503)
    return JsonResponse(body)
