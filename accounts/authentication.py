"""Who a request is: the API token authentication, and the typed user of a signed-in request."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiToken, User
from accounts.services import api_token_authenticate


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>`` (or ``Bearer <key>``) against hashed, expiring ApiTokens."""

    keyword = "Token"
    keywords = (b"token", b"bearer")

    def authenticate(self, request: Any) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        try:
            key = header[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header.") from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        found = api_token_authenticate(key=key)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        return found


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a view behind ``@login_required``: ``request.user`` is a ``User``."""

    user: User  # type: ignore[assignment]


def request_owner(request: Request) -> User:
    """The authenticated user of an API request (the default permission class has already
    refused anonymous ones)."""
    assert isinstance(request.user, User)
    return request.user
