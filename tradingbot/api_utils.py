"""Small helpers every API view uses: the owner, input validation, pagination, decimal output."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.mediatypes import media_type_matches
from rest_framework.utils.urls import remove_query_param, replace_query_param

from tradingbot.openapi import error_response

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000


def json_body(request: Request) -> Any:
    """The body of a request that must carry one, parsed. A body type the API does not parse is
    415 ``unsupported_media_type`` even when the body is empty: DRF skips the parser for an empty
    body, which would let a form post of nothing pass as ``{}`` (a 400 about missing fields)."""
    media_type = request.content_type
    parsers = request.parsers or ()
    if media_type and not any(media_type_matches(p.media_type, media_type) for p in parsers):
        raise exceptions.UnsupportedMediaType(media_type)
    return request.data


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Run an input serializer; a ValidationError becomes the 400 envelope with field details."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- Pagination --------------------------------------------------------------------------------


class PageQuery(serializers.Serializer):
    # Bounded so that the offset always fits the database's integers.
    page = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=1)
    page_size = serializers.IntegerField(
        min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE
    )


def paged(request: Request, items: QuerySet[Any], output: Any, query: dict[str, Any]) -> Response:
    """One page of ``items`` as ``{"count", "next", "previous", "results"}``; a page past the
    end is empty (``next`` null) rather than an error."""
    page, size = query["page"], query["page_size"]
    count = items.count()
    rows = items[(page - 1) * size : page * size]
    return Response(
        {
            "count": count,
            "next": _page_url(request, page + 1) if page * size < count else None,
            "previous": _page_url(request, page - 1) if page > 1 else None,
            "results": output(rows, many=True).data,
        }
    )


def _page_url(request: Request, page: int) -> str:
    url = request.build_absolute_uri()
    if page == 1:
        return remove_query_param(url, "page")
    return replace_query_param(url, "page", page)


def paginated(name: str, item: serializers.Serializer) -> serializers.Serializer:
    """The OpenAPI shape of a page of ``item``."""
    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )


def page_schema(
    operation_id: str,
    page: str,
    item: serializers.Serializer,
    query: type[serializers.Serializer],
    *,
    bad_query: str = "validation_error: a bad filter or page",
    not_found: OpenApiResponse | None = None,
) -> Any:
    """The schema of a GET answered by :func:`paged`: the parameters of ``query``, a page of
    ``item`` (the component ``page``), 400 for a bad query and, when given, ``not_found``."""
    responses: dict[int, Any] = {200: paginated(page, item), 400: error_response(bad_query)}
    if not_found is not None:
        responses[404] = not_found
    return extend_schema(operation_id=operation_id, parameters=[query], responses=responses)


# --- Output fields -----------------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "decimal"})
class DecimalText(serializers.Field):
    """A Decimal as a plain string without trailing zeros: ``"10000"``, ``"0.001"``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Decimal) -> str:
        return format(value.normalize(), "f")
