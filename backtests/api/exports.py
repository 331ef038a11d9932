"""A finished backtest's export: ``GET /api/backtests/<id>/export?format=csv|json``.

- ``csv``: a header row (``report_selectors.EXPORT_COLUMNS``), then one row per trade in order,
  decimals as the stored text (as the trades endpoint writes them), times as epoch ms and ISO
  8601 UTC. Streamed, so a run of any size is never held whole in memory.
- ``json``: ``{"backtest": {...the backtest as GET /api/backtests/<id>}, "metrics": {...},
  "report": {...the page's breakdowns, months and weekdays in the owner's time zone},
  "trades": [{...every column}, ...]}``.

Both are attachments (``Content-Disposition``). Only a finished (``done``) backtest exports:
any other is 409 ``not_done`` (a queued or running one has no results yet, a failed or
cancelled one never will). Another user's backtest is 404; a missing or unknown ``format`` is
400 ``validation_error``.

DRF reads a ``format`` query parameter as a request for a renderer; here it names the file, so
this view's content negotiation ignores it (errors are JSON, in the envelope, as everywhere).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from accounts.models import User
from backtests import selectors
from backtests.api.backtests import backtest_data
from backtests.api.common import NOT_FOUND
from backtests.models import Backtest, RunStatus
from backtests.report_selectors import (
    EXPORT_COLUMNS,
    backtest_export_rows,
    backtest_report_breakdown,
)
from tradingbot.api_utils import validated
from tradingbot.errors import AppError
from tradingbot.logconfig import context
from tradingbot.openapi import error_response

logger = logging.getLogger(__name__)


class ExportQuery(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=(("csv", "csv"), ("json", "json")),
        help_text="csv: the trades, a header row then one row per trade; json: the backtest, "
        "its metrics, its report and its trades",
    )


class _FileFormatNegotiation(DefaultContentNegotiation):
    """Always the API's JSON renderer: ``format`` names the export's file here."""

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> Any:
        renderer = renderers[0]
        return renderer, renderer.media_type


class _Echo:
    """A file-like object whose ``write`` returns what it was given (csv.writer into a stream)."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        yield writer.writerow([row[column] for column in EXPORT_COLUMNS])


def _zone(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _finished(backtest: Backtest) -> None:
    if backtest.status != RunStatus.DONE:
        raise AppError(
            "not_done",
            f"Backtest #{backtest.pk} is {backtest.status}: only a finished backtest has results "
            "to export.",
            409,
            details={"status": backtest.status},
        )


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


_FILES = (
    "An attachment. format=csv: text/csv, a header row then a row per trade; format=json: "
    "{backtest, metrics, report, trades}"
)


class BacktestExportApi(APIView):
    content_negotiation_class = _FileFormatNegotiation

    @extend_schema(
        operation_id="backtest_export",
        parameters=[ExportQuery],
        responses={
            (200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description=_FILES),
            (200, "application/json"): OpenApiResponse(
                response=OpenApiTypes.OBJECT, description=_FILES
            ),
            400: error_response("validation_error: format is missing or not csv or json"),
            404: NOT_FOUND,
            409: error_response("not_done: the backtest has not finished (or failed)"),
        },
    )
    def get(self, request: Request, pk: int) -> Response | StreamingHttpResponse:
        user = request_owner(request)
        backtest = selectors.backtest_get(user=user, pk=pk)
        query = validated(ExportQuery, request.query_params)
        _finished(backtest)
        logger.info(
            "backtest.exported",
            extra=context(backtest_id=backtest.pk, export_format=query["format"]),
        )
        if query["format"] == "csv":
            return StreamingHttpResponse(
                _csv_lines(backtest_export_rows(backtest=backtest)),
                content_type="text/csv; charset=utf-8",
                headers=_attachment(f"backtest-{backtest.pk}-trades.csv"),
            )
        body = {
            "backtest": backtest_data(backtest),
            "metrics": backtest.metrics or {},
            "report": backtest_report_breakdown(backtest=backtest, zone=_zone(user)),
            "trades": list(backtest_export_rows(backtest=backtest)),
        }
        return Response(body, headers=_attachment(f"backtest-{backtest.pk}.json"))
