"""OpenAPI pieces shared by the API views: the error envelope every error response uses, and the
hook that documents the errors every operation can answer (401, and 400/413/415 for a body)."""

from __future__ import annotations

from typing import Any

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


_ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}
# The errors any operation can answer, whatever its view: (status, when it applies, description).
_COMMON_ERRORS = (
    (401, "auth", "not_authenticated or authentication_failed: no credentials, or a bad token"),
    (400, "body", "malformed_request: the body is not JSON, nests too deep or is not Unicode"),
    (413, "body", "request_too_large: the body is over 1 MiB"),
    (415, "body", "unsupported_media_type: the body is not JSON"),
)


def document_common_errors(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add to every operation the error responses that the
    platform answers for it before its view runs (authentication, the body's parsing), unless the
    view documents them itself."""
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for status, applies, description in _COMMON_ERRORS:
                if str(status) not in responses and _applies(operation, applies):
                    responses[str(status)] = {
                        "content": {"application/json": {"schema": _ENVELOPE}},
                        "description": description,
                    }
    return result


def _applies(operation: dict[str, Any], condition: str) -> bool:
    if condition == "body":
        return "requestBody" in operation
    return any(requirement for requirement in operation.get("security", []))
