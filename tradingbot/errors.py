"""One error envelope for every API error: ``{"error": {"code", "message", "details"}}``.

- ``AppError(code, message, status)`` is what services raise for expected failures.
- DRF exceptions (validation, auth, throttling, parse errors) are translated here.
- Anything else is a 500 ``internal_error``: logged once with its traceback, and nothing of the
  exception reaches the body.
- Every message and detail goes out through :func:`envelope`, which escapes what UTF-8 cannot
  encode (a lone surrogate a client sent, repeated in "... is not a valid choice"): an error
  message can never fail to render.
- An expected failure (anything but ``internal_error``) is not logged here: the access log's
  line for the request is its record, with its status and code (``error=exchange_unavailable``,
  at WARNING for a 5xx). The response is marked as logged, or Django's request logger would add
  an ERROR line for an expected 503.

The HTML error views at the bottom render the site layout, or the envelope for ``/api/`` paths
that never reached a DRF view (unknown URL, CSRF failure on a plain view, ...).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from rest_framework import exceptions, status
from rest_framework.response import Response

from tradingbot.logconfig import context, encodable

logger = logging.getLogger(__name__)


class AppError(Exception):
    """An expected failure with a stable machine-readable code and a human message."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        self.headers = headers or {}


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error body; every text in it (keys too) is made encodable (see the module doc)."""
    return {"error": {"code": code, "message": encodable(message), "details": _safe(details or {})}}


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        return {_safe(key): _safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(item) for item in value]
    return value


_R = TypeVar("_R", bound=HttpResponse)

# The attribute of a response that names its error code, for the access log's line.
ERROR_CODE_ATTR = "error_code"


def _answered(response: _R, code: str) -> _R:
    """``response`` (an expected error) marked with its code, and as logged: the access log's line
    is its record, and Django's request logger would add an ERROR line for a 5xx."""
    setattr(response, ERROR_CODE_ATTR, code)
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


_DRF_CODES: dict[type[exceptions.APIException], tuple[str, str | None]] = {
    exceptions.ParseError: ("malformed_request", None),
    exceptions.AuthenticationFailed: ("authentication_failed", None),
    exceptions.NotAuthenticated: (
        "not_authenticated",
        "Authentication credentials were not provided.",
    ),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.Throttled: ("throttled", None),
}


def api_exception_handler(exc: Exception, ctx: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception becomes the envelope with the right status."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, AppError):
        code = exc.code
        body = envelope(code, exc.message, exc.details)
        response = Response(body, status=exc.status, headers=exc.headers)
    elif isinstance(exc, RequestDataTooBig):
        code = "request_too_large"
        body = envelope(code, "The request body is too large.")
        response = Response(body, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    elif isinstance(exc, exceptions.ValidationError):
        code = "validation_error"
        body = envelope(code, "The request has invalid fields.", _field_details(exc))
        response = Response(body, status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, exceptions.APIException):
        code, response = _api_exception_response(exc)
    else:
        return _internal_error_response(exc, ctx)
    return _answered(response, code)


def _api_exception_response(exc: exceptions.APIException) -> tuple[str, Response]:
    code, fixed_message = _DRF_CODES.get(type(exc), (str(exc.default_code), None))
    headers: dict[str, str] = {}
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        headers["Retry-After"] = str(int(wait) + 1)
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    message = fixed_message or _flatten_detail(exc.detail)
    return code, Response(envelope(code, message), status=exc.status_code, headers=headers)


def _internal_error_response(exc: Exception, ctx: dict[str, Any]) -> Response:
    request = ctx.get("request")
    view = ctx.get("view")
    logger.error(
        "api.internal_error",
        exc_info=exc,
        extra=context(
            path=getattr(request, "path", None),
            method=getattr(request, "method", None),
            view=type(view).__name__ if view is not None else None,
            user_id=getattr(getattr(request, "user", None), "pk", None),
        ),
    )
    response = Response(
        envelope("internal_error", "An unexpected error occurred. It has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
    # Django's request logger would log this 500 a second time, without the traceback.
    response._has_been_logged = True  # type: ignore[attr-defined]
    setattr(response, ERROR_CODE_ATTR, "internal_error")
    return response


def _field_details(exc: exceptions.ValidationError) -> dict[str, Any]:
    detail = exc.detail
    if isinstance(detail, dict):
        return {str(field): _as_messages(errors) for field, errors in detail.items()}
    return {"non_field_errors": _as_messages(detail)}


def _as_messages(errors: Any) -> Any:
    if isinstance(errors, dict):
        return {str(k): _as_messages(v) for k, v in errors.items()}
    if isinstance(errors, list):
        return [_as_messages(e) if isinstance(e, dict | list) else str(e) for e in errors]
    return [str(errors)]


def _flatten_detail(detail: Any) -> str:
    if isinstance(detail, list):
        return " ".join(_flatten_detail(d) for d in detail)
    if isinstance(detail, dict):
        return " ".join(_flatten_detail(d) for d in detail.values())
    return str(detail)


# --- HTML (and non-DRF /api/) error views -----------------------------------------------------


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


MULTIPART_ERROR = "The multipart body could not be parsed."


def _error_page(
    request: HttpRequest, status_code: int, code: str, title: str, text: str
) -> HttpResponse:
    if _wants_json(request):
        response = JsonResponse(envelope(code, text), status=status_code)
        # A 500 is still to be logged by Django, with its traceback, after this view returns.
        return response if status_code >= 500 else _answered(response, code)
    return render(
        request,
        "errors/error.html",
        {"status": status_code, "title": title, "text": text},
        status=status_code,
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, MultiPartParserError):  # a form content type, another body
        return _error_page(request, 400, "malformed_request", "Bad request", MULTIPART_ERROR)
    return _error_page(
        request, 400, "bad_request", "Bad request", "The request could not be understood."
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_page(
        request, 403, "permission_denied", "Forbidden", "You do not have permission to do that."
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_page(request, 404, "not_found", "Not found", "There is nothing at this address.")


def server_error(request: HttpRequest) -> HttpResponse:
    return _error_page(
        request,
        500,
        "internal_error",
        "Something went wrong",
        "An unexpected error occurred. It has been logged.",
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _error_page(
        request,
        403,
        "csrf_failed",
        "Form expired",
        "The form's security token was missing or stale. Reload the page and try again.",
    )
