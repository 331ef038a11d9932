"""Parameter sweep endpoints: create and list, read (with the ranking) and delete, cancel."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from backtests import selectors, services
from backtests.api.common import (
    CREATE_ERRORS,
    NOT_FOUND,
    TOO_MANY,
    PeriodInput,
    RunSpecOutput,
    RunStateOutput,
    cancel_response,
    cancel_schema,
    create_response,
    create_schema,
    deleted_response,
)
from backtests.metrics import RANKABLE_METRICS
from backtests.models import RunStatus, Sweep, SweepRun
from tradingbot.api_utils import PageQuery, page_schema, paged, validated
from tradingbot.openapi import error_response


class SweepInput(PeriodInput):
    grid = serializers.DictField(
        help_text='{param: [values]} or {param: {"start", "stop", "step"}}; its '
        "cartesian product is run, at most SWEEP_MAX_COMBINATIONS combinations",
        error_messages={
            # DRF formats it: the literal braces are doubled.
            "not_a_dict": 'Expected an object of parameter: values, such as {{"fast": [5, 10], '
            '"slow": {{"start": 20, "stop": 50, "step": 10}}}}; got {input_type}.'
        },
    )
    params = serializers.DictField(
        required=False, default=dict, help_text="Parameters fixed for every combination"
    )
    rank_by = serializers.ChoiceField(choices=RANKABLE_METRICS, default="sharpe")


class SweepOutput(RunStateOutput, RunSpecOutput):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    grid = serializers.JSONField(help_text="{param: [values]}, ranges expanded")
    rank_by = serializers.CharField()
    combination_count = serializers.IntegerField()
    skipped_count = serializers.IntegerField(help_text="Combinations the strategy rejects")
    done_count = serializers.IntegerField()
    failed_count = serializers.IntegerField()
    candle_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class RankedRunOutput(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 = best by rank_by")
    params = serializers.JSONField()
    metrics = serializers.JSONField()
    status = serializers.CharField()


class FailedRunOutput(serializers.Serializer):
    params = serializers.JSONField()
    error = serializers.CharField()


class SweepDetailOutput(SweepOutput):
    results = RankedRunOutput(many=True, help_text="Finished combinations, best first")
    failures = FailedRunOutput(many=True)


class SweepListQuery(PageQuery):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    strategy = serializers.CharField(max_length=64, required=False)


class SweepDetailQuery(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1, required=False, help_text="Only the best N results (default all)"
    )


def sweep_detail(sweep: Sweep, *, limit: int | None = None) -> dict[str, Any]:
    ranking = selectors.sweep_ranking(sweep=sweep, limit=limit)
    return {
        **SweepOutput(sweep).data,
        "results": [_ranked(rank, run) for rank, run in enumerate(ranking, start=1)],
        "failures": FailedRunOutput(selectors.sweep_failure_list(sweep=sweep), many=True).data,
    }


def _ranked(rank: int, run: SweepRun) -> dict[str, Any]:
    return {"rank": rank, "params": run.params, "metrics": run.metrics, "status": run.status}


class SweepListCreateApi(APIView):
    @page_schema("sweeps_list", "SweepPage", SweepOutput(many=True), SweepListQuery)
    def get(self, request: Request) -> Response:
        query = validated(SweepListQuery, request.query_params)
        sweeps = selectors.sweep_list(
            user=request_owner(request), status=query.get("status"), strategy=query.get("strategy")
        )
        return paged(request, sweeps, SweepOutput, query)

    @create_schema(
        "sweeps_create",
        SweepInput,
        SweepDetailOutput,
        bad_request=f"{CREATE_ERRORS}, invalid_grid, grid_too_large",
        others={429: TOO_MANY},
    )
    def post(self, request: Request) -> Response:
        return create_response(request, SweepInput, services.sweep_create, sweep_detail)


class SweepDetailApi(APIView):
    @extend_schema(
        operation_id="sweeps_retrieve",
        parameters=[SweepDetailQuery],
        responses={
            200: SweepDetailOutput,
            400: error_response("validation_error: a bad limit"),
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        sweep = selectors.sweep_get(user=request_owner(request), pk=pk)
        query = validated(SweepDetailQuery, request.query_params)
        return Response(sweep_detail(sweep, limit=query.get("limit")))

    @extend_schema(operation_id="sweeps_destroy", responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, pk: int) -> Response:
        sweep = selectors.sweep_get(user=request_owner(request), pk=pk)
        services.sweep_delete(sweep=sweep)
        return deleted_response()


class SweepCancelApi(APIView):
    @cancel_schema("sweeps_cancel", SweepDetailOutput)
    def post(self, request: Request, pk: int) -> Response:
        sweep = selectors.sweep_get(user=request_owner(request), pk=pk)
        return cancel_response(
            sweep,
            kind="sweep",
            cancel=lambda run: services.sweep_cancel(sweep=run),
            output=sweep_detail,
        )
