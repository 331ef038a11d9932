"""OpenAPI pieces shared by the API views: the error envelope every error response uses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorBody(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorEnvelope(serializers.Serializer):
    error = ErrorBody()


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorEnvelope, description=description)
