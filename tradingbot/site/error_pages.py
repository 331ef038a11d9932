"""The site's 404 and 500 (``handler404``/``handler500`` of the root URLconf).

Under ``/api/`` both answer the API's JSON error envelope (``tradingbot.errors``). Elsewhere the
404 is the site's own page in its layout (never Django's list of URL patterns, whatever DEBUG
says in production), and the 500 is a plain page rendered without the request: no context
processor, no session, no database, so it renders even when those are what failed.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from tradingbot import errors


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return errors.page_not_found(request, exception)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return errors.server_error(request)
    return HttpResponseServerError(loader.get_template("500.html").render())
