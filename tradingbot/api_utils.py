"""Small helpers every API view uses."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from accounts.models import User


def request_owner(request: Request) -> User:
    """The authenticated user (the default permission class has already refused anonymous)."""
    assert isinstance(request.user, User)
    return request.user


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Run an input serializer; a ValidationError becomes the 400 envelope with field details."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
