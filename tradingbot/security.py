"""Content-Security-Policy and Permissions-Policy on every response (Django 5.2 has no CSP).

The policy is strict: scripts, styles, fonts and images come from this site only, with no inline
script, inline style or ``eval`` (templates load ``static/js`` files and put values in
``data-`` attributes; ``static/js/page.js`` does the small things inline handlers used to do).
``data:`` images are allowed for the icons of the admin and the API docs' CSS. The page may
connect to its own origin, over http and over the WebSocket (``/ws/``), and may not be framed.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

# The one inline style allowed: the <style> that Lightweight Charts (static/vendor/) adds for
# TradingView's attribution logo, which its licence asks us to keep. Its hash, so that nothing
# else inline passes (tests/tradingbot/test_security_headers.py recomputes it from the file).
CHART_ATTRIBUTION_STYLE = "'sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY='"

_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    f"style-src 'self' {CHART_ATTRIBUTION_STYLE}",
    "img-src 'self' data:",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)

# Powerful browser features this site never uses, denied to it and to anything it embeds.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
)


def content_security_policy(request: HttpRequest) -> str:
    """The policy for a response to ``request``: 'self' plus the WebSocket of the same host
    (``'self'`` covers ws: only in CSP level 3 browsers)."""
    connect = "connect-src 'self'"
    try:
        host = request.get_host()
    except DisallowedHost:  # already answered 400; 'self' alone is still right
        host = ""
    if host:
        connect += f" {'wss' if request.is_secure() else 'ws'}://{host}"
    return "; ".join((*_POLICY, connect))


class SecurityHeadersMiddleware:
    """Adds both headers unless the response already has its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request)
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = PERMISSIONS_POLICY
        return response
