"""``GET /healthz``: is this process able to reach the database and Redis?

Probes arrive every few seconds, so the log records changes of state only: one warning when a
part becomes unavailable (with the error), one line when all is well again.
"""

from __future__ import annotations

import logging
import threading

import redis
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from tradingbot.logconfig import context
from tradingbot.redis import get_redis

logger = logging.getLogger(__name__)

_state_lock = threading.Lock()
_last_failing: frozenset[str] = frozenset()


def _database_error() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return None if cursor.fetchone() == (1,) else "unexpected answer to SELECT 1"
    except DatabaseError as error:
        return repr(error)[:300]


def _redis_error() -> str | None:
    try:
        return None if get_redis().ping() else "no answer to PING"
    except (redis.RedisError, OSError) as error:
        return repr(error)[:300]


def _log_change(errors: dict[str, str]) -> None:
    global _last_failing
    failing = frozenset(errors)
    with _state_lock:
        changed, _last_failing = failing != _last_failing, failing
    if changed and failing:
        logger.warning(
            "health.degraded",
            extra=context(failing=",".join(sorted(failing)), errors="; ".join(errors.values())),
        )
    elif changed:
        logger.info("health.recovered")


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_error(), "redis": _redis_error()}
    errors = {part: error for part, error in checks.items() if error is not None}
    _log_change(errors)
    body = {"status": "error" if errors else "ok"}
    body.update({part: "unavailable" if part in errors else "ok" for part in checks})
    response = JsonResponse(body, status=503 if errors else 200)
    # The state change above is the one log line; Django must not add one per probe.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
