"""Test-only URLconf: the real routes plus a page and a plain /api/ view that fail on purpose."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from tradingbot.site import urls as real_urls

# Error handlers are looked up on the root URLconf: keep the project's own.
handler404 = real_urls.handler404
handler500 = real_urls.handler500


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret internals")


urlpatterns = [
    path("boom/", boom),
    path("api/plain-boom", boom),  # an /api/ URL that no DRF view answers
    path("", include("tradingbot.site.urls")),
]
