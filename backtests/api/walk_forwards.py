"""Walk-forward endpoints: create and list, read (windows and the stitched result), delete,
cancel."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from backtests import walk_forward_selectors as selectors
from backtests.api.common import (
    CREATE_ERRORS,
    NOT_FOUND,
    TOO_MANY,
    RunSpecOutput,
    RunStateOutput,
    cancel_response,
    cancel_schema,
    create_response,
    create_schema,
    deleted_response,
)
from backtests.api.optimizations import SEARCH_ERRORS, OptimizationInput
from backtests.models import RunStatus, WalkForward, WalkForwardWindow
from backtests.services import walk_forwards as services
from backtests.walk_forward import MAX_DAYS, MAX_WINDOWS
from tradingbot.api_utils import PageQuery, page_schema, paged, validated

WINDOW_ERRORS = (
    "invalid_windows, period_too_short (the windows need more days than start → end), "
    "empty_window (a window's period holds no candles)"
)


class WalkForwardInput(OptimizationInput):
    """An optimisation's fields (``trials`` per window) plus its windows."""

    trials = serializers.IntegerField(
        min_value=1,
        max_value=settings.OPTIMIZATION_MAX_TRIALS,
        default=30,
        help_text="Trials per window (a grid: at most its size)",
    )
    in_sample_days = serializers.IntegerField(
        min_value=1, max_value=MAX_DAYS, help_text="Days each window optimises on"
    )
    out_of_sample_days = serializers.IntegerField(
        min_value=1, max_value=MAX_DAYS, help_text="Days each window's best parameters are run on"
    )
    windows = serializers.IntegerField(
        min_value=1, max_value=MAX_WINDOWS, help_text="How many windows, one after the other"
    )
    anchored = serializers.BooleanField(
        default=False,
        help_text="true: every in-sample period starts at start and grows; false: they roll",
    )


class WindowOutput(serializers.Serializer):
    number = serializers.SerializerMethodField(help_text="1 for the first window")
    status = serializers.ChoiceField(
        choices=RunStatus.choices,
        help_text="queued while optimised, running during its out-of-sample run",
    )
    error = serializers.CharField()
    in_sample_start = serializers.DateTimeField()
    in_sample_end = serializers.DateTimeField()
    out_of_sample_start = serializers.DateTimeField()
    out_of_sample_end = serializers.DateTimeField()
    optimization_id = serializers.IntegerField(
        allow_null=True, help_text="Its in-sample optimisation (null once deleted)"
    )
    in_sample_progress = serializers.SerializerMethodField(
        help_text="Share of its optimisation's trials finished"
    )
    params = serializers.JSONField(allow_null=True, help_text="The best in-sample parameters")
    in_sample_value = serializers.FloatField(allow_null=True, help_text="The first objective's")
    in_sample_metrics = serializers.JSONField(allow_null=True, help_text="The best trial's")
    out_of_sample_metrics = serializers.JSONField(allow_null=True)
    out_of_sample_candles = serializers.IntegerField()

    def get_number(self, window: WalkForwardWindow) -> int:
        return window.index + 1

    def get_in_sample_progress(self, window: WalkForwardWindow) -> float | None:
        if window.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            return 1.0 if window.status == RunStatus.DONE else None
        optimization = window.optimization
        return None if optimization is None else round(optimization.progress, 4)


class WalkForwardOutput(RunStateOutput, RunSpecOutput):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    space = serializers.JSONField()
    objectives = serializers.JSONField(help_text="[{metric: weight}, ...], each maximised")
    sampler = serializers.CharField()
    seed = serializers.IntegerField(allow_null=True)
    min_trades = serializers.IntegerField()
    trials = serializers.IntegerField(source="trials_per_window", help_text="Per window")
    in_sample_days = serializers.IntegerField()
    out_of_sample_days = serializers.IntegerField()
    window_count = serializers.IntegerField()
    anchored = serializers.BooleanField()
    windows_done = serializers.IntegerField()
    trials_finished = serializers.IntegerField(help_text="Of every window together")
    trial_count = serializers.IntegerField(help_text="Of every window together")
    candle_count = serializers.IntegerField()
    metrics = serializers.JSONField(allow_null=True, help_text="The stitched out-of-sample run's")
    trade_count = serializers.IntegerField()
    in_sample_return = serializers.FloatField(
        allow_null=True, help_text="Mean annualised (simple) return of the windows' best trials"
    )
    out_of_sample_return = serializers.FloatField(
        allow_null=True, help_text="Annualised (simple) return of the stitched out-of-sample run"
    )
    overfitting_ratio = serializers.FloatField(
        allow_null=True,
        help_text="out_of_sample_return / in_sample_return (walk-forward efficiency); null "
        "when the in-sample return is not positive",
    )
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class WalkForwardDetailOutput(WalkForwardOutput):
    windows = serializers.SerializerMethodField(help_text="In time order")
    equity = serializers.JSONField(
        help_text="The stitched out-of-sample equity, [[time_ms, equity], ...], thinned"
    )

    @extend_schema_field(WindowOutput(many=True))
    def get_windows(self, walk_forward: WalkForward) -> Any:
        return WindowOutput(selectors.window_list(walk_forward=walk_forward), many=True).data


class WalkForwardListQuery(PageQuery):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    strategy = serializers.CharField(max_length=64, required=False)


def walk_forward_detail(walk_forward: WalkForward) -> dict[str, Any]:
    return dict(WalkForwardDetailOutput(walk_forward).data)


class WalkForwardListCreateApi(APIView):
    @page_schema(
        "walk_forwards_list", "WalkForwardPage", WalkForwardOutput(many=True), WalkForwardListQuery
    )
    def get(self, request: Request) -> Response:
        query = validated(WalkForwardListQuery, request.query_params)
        found = selectors.walk_forward_list(
            user=request_owner(request), status=query.get("status"), strategy=query.get("strategy")
        )
        return paged(request, found, WalkForwardOutput, query)

    @create_schema(
        "walk_forwards_create",
        WalkForwardInput,
        WalkForwardDetailOutput,
        bad_request=f"{CREATE_ERRORS}, {SEARCH_ERRORS}, {WINDOW_ERRORS}",
        others={429: TOO_MANY},
    )
    def post(self, request: Request) -> Response:
        return create_response(
            request, WalkForwardInput, services.walk_forward_create, walk_forward_detail
        )


class WalkForwardDetailApi(APIView):
    @extend_schema(
        operation_id="walk_forwards_retrieve",
        responses={200: WalkForwardDetailOutput, 404: NOT_FOUND},
    )
    def get(self, request: Request, pk: int) -> Response:
        walk_forward = selectors.walk_forward_get(user=request_owner(request), pk=pk)
        return Response(walk_forward_detail(walk_forward))

    @extend_schema(operation_id="walk_forwards_destroy", responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, pk: int) -> Response:
        walk_forward = selectors.walk_forward_get(user=request_owner(request), pk=pk)
        services.walk_forward_delete(walk_forward=walk_forward)
        return deleted_response()


class WalkForwardCancelApi(APIView):
    @cancel_schema("walk_forwards_cancel", WalkForwardDetailOutput)
    def post(self, request: Request, pk: int) -> Response:
        walk_forward = selectors.walk_forward_get(user=request_owner(request), pk=pk)
        return cancel_response(
            walk_forward,
            kind="walk-forward",
            cancel=lambda run: services.walk_forward_cancel(walk_forward=run),
            output=walk_forward_detail,
        )
