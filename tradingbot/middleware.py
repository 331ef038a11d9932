"""One access-log line per HTTP request, in the project's log format (daphne's own is off); the
trader's time zone for the pages."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from tradingbot.errors import ERROR_CODE_ATTR
from tradingbot.logconfig import context

logger = logging.getLogger("tradingbot.access")

# Probes and assets would drown the events that matter; they are logged at DEBUG only.
QUIET_PREFIXES = ("/healthz", "/metrics", "/" + settings.STATIC_URL.lstrip("/"))
# A bot's signal webhook carries its secret token in the path: the log line never shows it.
SECRET_PATH = re.compile(r"^(/api/signals/)[^/]+")


def logged_path(path: str) -> str:
    return SECRET_PATH.sub(r"\1<token>", path)


class AccessLogMiddleware:
    """One line per request: INFO, or WARNING for a 5xx answer (with its error code, e.g.
    ``error=exchange_unavailable``: an expected 503 is this one line, no traceback). A request
    whose error handling itself failed still gets its line (status 500) before the exception
    goes on to the server."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        except Exception:
            with contextlib.suppress(Exception):  # the line must not hide the failure
                _log_request(request, 500, None, started)
            raise
        error = getattr(response, ERROR_CODE_ATTR, None)
        _log_request(request, response.status_code, error, started)
        return response


def _log_request(request: HttpRequest, status: int, error: str | None, started: float) -> None:
    if request.path.startswith(QUIET_PREFIXES):
        level = logging.DEBUG
    else:
        level = logging.WARNING if status >= 500 else logging.INFO
    if not logger.isEnabledFor(level):
        return
    user = getattr(request, "user", None)
    fields = context(
        method=request.method,
        path=logged_path(request.path),
        status=status,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        user_id=user.pk if user is not None and user.is_authenticated else None,
        ip=request.META.get("REMOTE_ADDR"),
    )
    if error is not None:
        fields["error"] = error
    logger.log(level, "http.request", extra=fields)


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
