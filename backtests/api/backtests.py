"""Backtest endpoints: create and list, read and delete, trades, equity, cancel, re-run."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
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
from backtests.models import Backtest, BacktestTrade, RunStatus
from tradingbot.api_utils import DecimalText, PageQuery, page_schema, paged, validated
from tradingbot.openapi import error_response

DEFAULT_TRADE_PAGE_SIZE = 100
MAX_TRADE_PAGE_SIZE = 1000


class BacktestInput(PeriodInput):
    pass


class BacktestOutput(RunStateOutput, RunSpecOutput):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    metrics = serializers.JSONField(allow_null=True, help_text="null until done")
    candle_count = serializers.IntegerField()
    trade_count = serializers.IntegerField()
    schedule = serializers.IntegerField(source="schedule_id", allow_null=True)
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


def backtest_data(backtest: Backtest) -> Any:
    return BacktestOutput(backtest).data


class BacktestListQuery(PageQuery):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    strategy = serializers.CharField(max_length=64, required=False)
    schedule = serializers.IntegerField(
        min_value=1, required=False, help_text="Only the runs of this schedule (its history)"
    )


class BacktestListCreateApi(APIView):
    @page_schema(
        "backtests_list",
        "BacktestPage",
        BacktestOutput(many=True),
        BacktestListQuery,
        not_found=error_response("not_found: the schedule filter names no schedule of yours"),
    )
    def get(self, request: Request) -> Response:
        user = request_owner(request)
        query = validated(BacktestListQuery, request.query_params)
        schedule = None
        if "schedule" in query:
            schedule = selectors.schedule_get(user=user, pk=query["schedule"])
        backtests = selectors.backtest_list(
            user=user, status=query.get("status"), strategy=query.get("strategy"), schedule=schedule
        )
        return paged(request, backtests, BacktestOutput, query)

    @create_schema(
        "backtests_create",
        BacktestInput,
        BacktestOutput,
        bad_request=CREATE_ERRORS,
        others={429: TOO_MANY},
    )
    def post(self, request: Request) -> Response:
        return create_response(request, BacktestInput, services.backtest_create, backtest_data)


class BacktestDetailApi(APIView):
    @extend_schema(
        operation_id="backtests_retrieve", responses={200: BacktestOutput, 404: NOT_FOUND}
    )
    def get(self, request: Request, pk: int) -> Response:
        backtest = selectors.backtest_get(user=request_owner(request), pk=pk)
        return Response(backtest_data(backtest))

    @extend_schema(operation_id="backtests_destroy", responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, pk: int) -> Response:
        backtest = selectors.backtest_get(user=request_owner(request), pk=pk)
        services.backtest_delete(backtest=backtest)
        return deleted_response()


class TradeOutput(serializers.Serializer):
    seq = serializers.IntegerField(help_text="0-based order of the trade")
    entry_time = serializers.IntegerField(help_text="Entry candle open time, epoch ms")
    exit_time = serializers.IntegerField(help_text="Exit candle open time, epoch ms")
    side = serializers.ChoiceField(choices=BacktestTrade.Side.choices)
    qty = DecimalText()
    entry_price = DecimalText()
    exit_price = DecimalText()
    fee = DecimalText(help_text="Both sides")
    pnl = DecimalText(help_text="Net of both fees and of the funding")
    # "return" is a keyword, so the field is declared through the class namespace.
    locals()["return"] = serializers.FloatField(
        source="return_rate", help_text="pnl / margin (the entry notional / leverage)"
    )
    exit_reason = serializers.ChoiceField(choices=BacktestTrade.ExitReason.choices)
    leverage = serializers.IntegerField(help_text="1 on spot")
    funding = DecimalText(help_text="Funding received while open (negative: paid), in quote")


class TradeQuery(PageQuery):
    page_size = serializers.IntegerField(
        min_value=1, max_value=MAX_TRADE_PAGE_SIZE, default=DEFAULT_TRADE_PAGE_SIZE
    )
    side = serializers.ChoiceField(choices=BacktestTrade.Side.choices, required=False)
    exit_reason = serializers.ChoiceField(choices=BacktestTrade.ExitReason.choices, required=False)


class BacktestTradesApi(APIView):
    """The trades of a backtest, in the order they happened (none until it is done)."""

    @page_schema(
        "backtest_trades_list",
        "BacktestTradePage",
        TradeOutput(many=True),
        TradeQuery,
        not_found=NOT_FOUND,
    )
    def get(self, request: Request, pk: int) -> Response:
        backtest = selectors.backtest_get(user=request_owner(request), pk=pk)
        query = validated(TradeQuery, request.query_params)
        trades = selectors.backtest_trade_list(
            backtest=backtest, side=query.get("side"), exit_reason=query.get("exit_reason")
        )
        return paged(request, trades, TradeOutput, query)


EQUITY_SCHEMA = {
    "type": "array",
    "description": "[[time_ms, equity], ...] ascending, thinned to at most "
    "BACKTEST_EQUITY_POINTS points (the first and last kept); empty until done",
    "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
}


class BacktestEquityApi(APIView):
    @extend_schema(
        operation_id="backtest_equity",
        responses={200: OpenApiResponse(response=EQUITY_SCHEMA), 404: NOT_FOUND},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(selectors.backtest_equity(user=request_owner(request), pk=pk))


class BacktestCancelApi(APIView):
    @cancel_schema("backtests_cancel", BacktestOutput)
    def post(self, request: Request, pk: int) -> Response:
        backtest = selectors.backtest_get(user=request_owner(request), pk=pk)
        return cancel_response(
            backtest,
            kind="backtest",
            cancel=lambda run: services.backtest_cancel(backtest=run),
            output=backtest_data,
        )


class BacktestRerunApi(APIView):
    @extend_schema(
        operation_id="backtests_rerun",
        request=None,
        responses={
            201: BacktestOutput,
            400: error_response("as for a new backtest, e.g. strategy_disabled, empty_period"),
            404: NOT_FOUND,
            429: error_response("too_many_active_runs"),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        backtest = selectors.backtest_get(user=request_owner(request), pk=pk)
        again = services.backtest_rerun(backtest=backtest)
        return Response(backtest_data(again), status=status.HTTP_201_CREATED)
