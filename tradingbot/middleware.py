"""One access-log line per HTTP request, in the project's log format (daphne's own is off)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from tradingbot.logconfig import context

logger = logging.getLogger("tradingbot.access")

# Probes and assets would drown the events that matter; they are logged at DEBUG only.
QUIET_PREFIXES = ("/healthz", "/" + settings.STATIC_URL.lstrip("/"))


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
