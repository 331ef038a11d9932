"""One access-log line per HTTP request, in the project's log format (daphne's own is off); the
trader's time zone for the pages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from tradingbot.logconfig import context

logger = logging.getLogger("tradingbot.access")

# Probes and assets would drown the events that matter; they are logged at DEBUG only.
QUIET_PREFIXES = ("/healthz", "/metrics", "/" + settings.STATIC_URL.lstrip("/"))


class AccessLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        level = logging.DEBUG if request.path.startswith(QUIET_PREFIXES) else logging.INFO
        if logger.isEnabledFor(level):
            user = getattr(request, "user", None)
            logger.log(
                level,
                "http.request",
                extra=context(
                    method=request.method,
                    path=request.path,
                    status=response.status_code,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    user_id=user.pk if user is not None and user.is_authenticated else None,
                    ip=request.META.get("REMOTE_ADDR"),
                ),
            )
        return response


class TraderTimeZoneMiddleware:
    """Pages show times in the signed-in trader's time zone (``User.time_zone``); UTC otherwise."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            timezone.activate(_zone(user.time_zone))
        else:
            timezone.deactivate()
        return self.get_response(request)


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # a name that was valid once: UTC, not a 500
        return ZoneInfo("UTC")
