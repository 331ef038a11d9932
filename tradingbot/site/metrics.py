"""``GET /metrics``: the platform's Prometheus metrics (``tradingbot.metrics``).

Served to a signed-in staff user, or to a request from the loopback address (a Prometheus on
the same machine, or behind the trusted proxy, which sets ``REMOTE_ADDR`` to the real client).
Anyone else gets the site's ordinary 404: the page does not admit that it exists.
"""

from __future__ import annotations

import ipaddress

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from tradingbot.metrics import metrics_text


def is_loopback(address: str | None) -> bool:
    """127.0.0.0/8 or ::1 (also as an IPv4-mapped IPv6 address); False for anything else."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not (user.is_active and user.is_staff) and not is_loopback(request.META.get("REMOTE_ADDR")):
        raise Http404
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
