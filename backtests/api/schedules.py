"""Backtest schedule endpoints: create and list, read, edit and delete, run now."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from backtests import selectors, services
from backtests.api.backtests import BacktestOutput
from backtests.api.common import (
    NOT_FOUND,
    RunSpecInput,
    RunSpecOutput,
    create_response,
    create_schema,
    deleted_response,
)
from backtests.models import Backtest, BacktestSchedule, RunStatus
from backtests.services.schedules import MAX_LOOKBACK_DAYS
from tradingbot.api_utils import PageQuery, page_schema, paged, validated
from tradingbot.errors import AppError
from tradingbot.openapi import error_response


class ScheduleInput(RunSpecInput):
    name = serializers.CharField(max_length=100)
    cron = serializers.CharField(
        max_length=100, help_text='minute hour day-of-month month day-of-week, UTC: "0 2 * * *"'
    )
    lookback_days = serializers.IntegerField(
        min_value=1, max_value=MAX_LOOKBACK_DAYS, help_text="Each run covers the last N days"
    )
    enabled = serializers.BooleanField(default=True)


class ScheduleUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    cron = serializers.CharField(max_length=100, required=False)
    lookback_days = serializers.IntegerField(
        min_value=1, max_value=MAX_LOOKBACK_DAYS, required=False
    )
    enabled = serializers.BooleanField(required=False)


class ScheduleHeadOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    cron = serializers.CharField()
    lookback_days = serializers.IntegerField()
    enabled = serializers.BooleanField()


class ScheduleOutput(ScheduleHeadOutput, RunSpecOutput):
    last_run_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ScheduleRunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    error = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    final_equity = serializers.SerializerMethodField()
    total_return = serializers.SerializerMethodField()

    def get_final_equity(self, backtest: Backtest) -> float | None:
        return (backtest.metrics or {}).get("final_equity")

    def get_total_return(self, backtest: Backtest) -> float | None:
        return (backtest.metrics or {}).get("total_return")


class ScheduleDetailOutput(ScheduleOutput):
    recent_runs = ScheduleRunOutput(
        many=True, help_text="The last 10 runs, newest first (all: GET /api/backtests?schedule=)"
    )


def schedule_detail(schedule: BacktestSchedule) -> dict[str, Any]:
    runs = selectors.schedule_recent_runs(schedule=schedule)
    return {**ScheduleOutput(schedule).data, "recent_runs": ScheduleRunOutput(runs, many=True).data}


class ScheduleListCreateApi(APIView):
    @page_schema(
        "backtest_schedules_list",
        "BacktestSchedulePage",
        ScheduleOutput(many=True),
        PageQuery,
        bad_query="validation_error: a bad page",
    )
    def get(self, request: Request) -> Response:
        query = validated(PageQuery, request.query_params)
        schedules = selectors.schedule_list(user=request_owner(request))
        return paged(request, schedules, ScheduleOutput, query)

    @create_schema(
        "backtest_schedules_create",
        ScheduleInput,
        ScheduleDetailOutput,
        bad_request="validation_error, malformed_request, invalid_cron, unknown_strategy, "
        "strategy_disabled, invalid_params, unknown_symbol",
        others={409: error_response("duplicate_name")},
    )
    def post(self, request: Request) -> Response:
        return create_response(request, ScheduleInput, services.schedule_create, schedule_detail)


class ScheduleDetailApi(APIView):
    @extend_schema(
        operation_id="backtest_schedules_retrieve",
        responses={200: ScheduleDetailOutput, 404: NOT_FOUND},
    )
    def get(self, request: Request, pk: int) -> Response:
        schedule = selectors.schedule_get(user=request_owner(request), pk=pk)
        return Response(schedule_detail(schedule))

    @extend_schema(
        operation_id="backtest_schedules_update",
        request=ScheduleUpdateInput,
        responses={
            200: ScheduleDetailOutput,
            400: error_response("validation_error, invalid_cron"),
            404: NOT_FOUND,
            409: error_response("duplicate_name"),
        },
    )
    def patch(self, request: Request, pk: int) -> Response:
        schedule = selectors.schedule_get(user=request_owner(request), pk=pk)
        data = validated(ScheduleUpdateInput, request.data)
        schedule = services.schedule_update(schedule=schedule, **data)
        return Response(schedule_detail(schedule))

    @extend_schema(operation_id="backtest_schedules_destroy", responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, pk: int) -> Response:
        schedule = selectors.schedule_get(user=request_owner(request), pk=pk)
        services.schedule_delete(schedule=schedule)
        return deleted_response()


class ScheduleRunApi(APIView):
    """Run a schedule now, exactly as beat would: over the last ``lookback_days``."""

    @extend_schema(
        operation_id="backtest_schedules_run",
        request=None,
        responses={
            201: OpenApiResponse(
                BacktestOutput,
                description="The run; a firing that could not start (no candles, strategy "
                "disabled, quota) is a failed backtest saying why, as in the history",
            ),
            404: NOT_FOUND,
            409: error_response("schedule_disabled: enable the schedule first"),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        schedule = selectors.schedule_get(user=request_owner(request), pk=pk)
        backtest = services.schedule_run(schedule_id=schedule.pk) if schedule.enabled else None
        if backtest is None:
            raise AppError(
                "schedule_disabled",
                f"The schedule {schedule.name!r} is paused; enable it to run it.",
                status=status.HTTP_409_CONFLICT,
            )
        return Response(BacktestOutput(backtest).data, status=status.HTTP_201_CREATED)
