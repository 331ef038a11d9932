"""Optimisation endpoints: create and list, read, delete, cancel, and the trials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from backtests import optimization_selectors as selectors
from backtests import services
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
from backtests.models import Optimization, RunStatus, TrialState
from backtests.search_space import OBJECTIVE_METRICS, SAMPLERS
from tradingbot.api_utils import PageQuery, page_schema, paged, validated

SEARCH_ERRORS = "invalid_space, invalid_objective, invalid_sampler, grid_too_large"


class OptimizationInput(PeriodInput):
    space = serializers.DictField(
        help_text='{param: {"low", "high", "step", "log"} or {"choices": [...]}}: what is searched'
    )
    objective = serializers.JSONField(
        default="sharpe",
        help_text=f"A metric ({', '.join(OBJECTIVE_METRICS)}), a weighted mix "
        '{"sharpe": 0.7, "calmar": 0.3}, or a list of those (several objectives); maximised',
    )
    trials = serializers.IntegerField(
        min_value=1,
        max_value=settings.OPTIMIZATION_MAX_TRIALS,
        default=30,
        help_text="How many trials to run (a grid: at most its size)",
    )
    sampler = serializers.ChoiceField(
        choices=SAMPLERS,
        required=False,
        help_text="tpe (default for one objective), nsga2 (default for several), random, grid",
    )
    min_trades = serializers.IntegerField(
        min_value=0, default=1, help_text="A trial with fewer trades is never the best"
    )
    seed = serializers.IntegerField(
        min_value=0, max_value=2**32 - 1, required=False, help_text="Reproducible sampling"
    )
    params = serializers.DictField(
        required=False, default=dict, help_text="Parameters fixed for every trial"
    )


class OptimizationOutput(RunStateOutput, RunSpecOutput):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    space = serializers.JSONField()
    objectives = serializers.JSONField(help_text="[{metric: weight}, ...], each maximised")
    sampler = serializers.CharField()
    seed = serializers.IntegerField(allow_null=True)
    min_trades = serializers.IntegerField()
    trials = serializers.IntegerField(source="trial_count")
    done_count = serializers.IntegerField(help_text="Trials complete")
    pruned_count = serializers.IntegerField(help_text="Trials skipped: rejected parameters...")
    failed_count = serializers.IntegerField()
    best_trial = serializers.IntegerField(allow_null=True)
    best_params = serializers.JSONField(allow_null=True)
    best_value = serializers.FloatField(allow_null=True, help_text="The first objective's")
    best_metrics = serializers.JSONField(allow_null=True)
    pareto = serializers.ListField(
        child=serializers.IntegerField(), help_text="Several objectives: the front's trials"
    )
    importances = serializers.DictField(child=serializers.FloatField())
    candle_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class TrialOutput(serializers.Serializer):
    number = serializers.IntegerField()
    params = serializers.JSONField()
    state = serializers.ChoiceField(choices=TrialState.choices)
    value = serializers.FloatField(allow_null=True, help_text="The first objective")
    values = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    feasible = serializers.BooleanField(help_text="At least min_trades trades")
    metrics = serializers.JSONField(allow_null=True)
    error = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class OptimizationListQuery(PageQuery):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    strategy = serializers.CharField(max_length=64, required=False)


class TrialListQuery(PageQuery):
    state = serializers.ChoiceField(choices=TrialState.choices, required=False)
    order = serializers.ChoiceField(choices=list(selectors.TRIAL_ORDERS), default="number")


def optimization_detail(optimization: Optimization) -> dict[str, Any]:
    return dict(OptimizationOutput(optimization).data)


class OptimizationListCreateApi(APIView):
    @page_schema(
        "optimizations_list",
        "OptimizationPage",
        OptimizationOutput(many=True),
        OptimizationListQuery,
    )
    def get(self, request: Request) -> Response:
        query = validated(OptimizationListQuery, request.query_params)
        found = selectors.optimization_list(
            user=request_owner(request), status=query.get("status"), strategy=query.get("strategy")
        )
        return paged(request, found, OptimizationOutput, query)

    @create_schema(
        "optimizations_create",
        OptimizationInput,
        OptimizationOutput,
        bad_request=f"{CREATE_ERRORS}, {SEARCH_ERRORS}",
        others={429: TOO_MANY},
    )
    def post(self, request: Request) -> Response:
        return create_response(
            request, OptimizationInput, services.optimization_create, optimization_detail
        )


class OptimizationDetailApi(APIView):
    @extend_schema(
        operation_id="optimizations_retrieve", responses={200: OptimizationOutput, 404: NOT_FOUND}
    )
    def get(self, request: Request, pk: int) -> Response:
        optimization = selectors.optimization_get(user=request_owner(request), pk=pk)
        return Response(optimization_detail(optimization))

    @extend_schema(operation_id="optimizations_destroy", responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, pk: int) -> Response:
        optimization = selectors.optimization_get(user=request_owner(request), pk=pk)
        services.optimization_delete(optimization=optimization)
        return deleted_response()


class OptimizationCancelApi(APIView):
    @cancel_schema("optimizations_cancel", OptimizationOutput)
    def post(self, request: Request, pk: int) -> Response:
        optimization = selectors.optimization_get(user=request_owner(request), pk=pk)
        return cancel_response(
            optimization,
            kind="optimization",
            cancel=lambda run: services.optimization_cancel(optimization=run),
            output=optimization_detail,
        )


class OptimizationTrialsApi(APIView):
    @page_schema("optimizations_trials", "TrialPage", TrialOutput(many=True), TrialListQuery)
    def get(self, request: Request, pk: int) -> Response:
        optimization = selectors.optimization_get(user=request_owner(request), pk=pk)
        query = validated(TrialListQuery, request.query_params)
        trials = selectors.trial_list(
            optimization=optimization, state=query.get("state"), order=query["order"]
        )
        return paged(request, trials, TrialOutput, query)
