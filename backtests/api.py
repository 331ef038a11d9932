"""REST endpoints of backtests, parameter sweeps and backtest schedules.

Thin views: input serializers check the shape and bounds of a request, the services check the
rest (strategy, parameters, market, period, grid, cron, quota) and write; the selectors read,
always scoped to the requesting user (another user's object is a 404).

Amounts and rates are decimal strings without trailing zeros (``"10000"``, ``"0.001"``); times
of trades and equity points are epoch milliseconds (UTC), as the engine books them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backtests import selectors, services
from backtests.models import (
    ACTIVE_STATUSES,
    Backtest,
    BacktestSchedule,
    BacktestTrade,
    RunStatus,
    Sweep,
    SweepRun,
)
from backtests.services.schedules import MAX_LOOKBACK_DAYS
from markets.exchanges.markets import SUPPORTED_EXCHANGES
from markets.models import ExchangeAccount
from markets.timeframes import TIMEFRAMES
from tradingbot.api_utils import (
    DecimalText,
    PageQuery,
    paged,
    paginated,
    request_owner,
    validated,
)
from tradingbot.errors import AppError
from tradingbot.openapi import error_response

DEFAULT_TRADE_PAGE_SIZE = 100
MAX_TRADE_PAGE_SIZE = 1000

CREATE_ERRORS = (
    "validation_error (fields), malformed_request (not JSON), unknown_strategy, "
    "strategy_disabled, invalid_params (details per parameter), unknown_symbol, invalid_period, "
    "empty_period, period_too_long"
)
NOT_FOUND = error_response("not_found: no such object, or another user's")


# --- Fields shared by the requests -------------------------------------------------------------


def _positive(value: Decimal) -> None:
    if value <= 0:
        raise serializers.ValidationError("Ensure this value is greater than 0.")


def _below_one(value: Decimal) -> None:
    if value >= 1:
        raise serializers.ValidationError("Ensure this value is less than 1.")


# The labels of exchange accounts' choices, so that the schema has one "exchange" enum.
_EXCHANGE_LABELS = dict(ExchangeAccount.Exchange.choices)
EXCHANGE_CHOICES = [(key, _EXCHANGE_LABELS.get(key, key)) for key in SUPPORTED_EXCHANGES]


class RunSettingsInput(serializers.Serializer):
    """What to simulate and how the simulated account trades (no period)."""

    strategy = serializers.CharField(max_length=64, help_text="A key of GET /api/strategies")
    params = serializers.DictField(
        required=False, default=dict, help_text="Strategy parameters; missing ones take defaults"
    )
    exchange = serializers.ChoiceField(choices=EXCHANGE_CHOICES)
    symbol = serializers.CharField(max_length=40)
    timeframe = serializers.ChoiceField(choices=TIMEFRAMES)
    initial_cash = serializers.DecimalField(
        max_digits=28, decimal_places=12, max_value=Decimal(10**12), validators=[_positive]
    )
    fee_rate = serializers.DecimalField(
        max_digits=12,
        decimal_places=8,
        min_value=Decimal(0),
        max_value=Decimal("0.1"),
        help_text="Fee per side: 0.001 = 0.1 %",
    )
    slippage_bps = serializers.DecimalField(
        max_digits=10,
        decimal_places=4,
        min_value=Decimal(0),
        max_value=Decimal(1000),
        default=Decimal(0),
        help_text="Price slippage per fill, in basis points",
    )
    position_size = serializers.DecimalField(
        max_digits=12,
        decimal_places=8,
        max_value=Decimal(1),
        default=Decimal(1),
        validators=[_positive],
        help_text="Fraction of equity per position, in (0, 1]",
    )
    stop_loss = serializers.DecimalField(
        max_digits=12,
        decimal_places=8,
        required=False,
        allow_null=True,
        validators=[_positive, _below_one],
        help_text="0.02 = 2 %, in (0, 1); null = none; absent = the strategy's default",
    )
    take_profit = serializers.DecimalField(
        max_digits=12,
        decimal_places=8,
        required=False,
        allow_null=True,
        max_value=Decimal(10),
        validators=[_positive],
        help_text="0.04 = 4 %, in (0, 10]; null = none; absent = the strategy's default",
    )


class BacktestInput(RunSettingsInput):
    start = serializers.DateTimeField(help_text="ISO 8601; candles opened in [start, end)")
    end = serializers.DateTimeField()


# --- Shared output fields ----------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "decimal"})
class RunSettingsOutput(serializers.Serializer):
    strategy = serializers.CharField(source="strategy_id")
    params = serializers.JSONField()
    exchange = serializers.CharField()
    symbol = serializers.CharField()
    timeframe = serializers.CharField()
    initial_cash = DecimalText()
    fee_rate = DecimalText()
    slippage_bps = DecimalText()
    position_size = DecimalText()
    stop_loss = DecimalText(allow_null=True)
    take_profit = DecimalText(allow_null=True)


# --- Backtests ---------------------------------------------------------------------------------


class RunStateOutput(serializers.Serializer):
    """The leading fields of a backtest or a sweep (declared bases come first in the output)."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    progress = serializers.FloatField(help_text="0..1")
    error = serializers.CharField(help_text="Why it failed; empty otherwise")


class BacktestOutput(RunStateOutput, RunSettingsOutput):
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


class BacktestListQuery(PageQuery):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    strategy = serializers.CharField(max_length=64, required=False)
    schedule = serializers.IntegerField(
        min_value=1, required=False, help_text="Only the runs of this schedule (its history)"
    )


class BacktestListCreateApi(APIView):
    @extend_schema(
        operation_id="backtests_list",
        parameters=[BacktestListQuery],
        responses={
            200: paginated("BacktestPage", BacktestOutput(many=True)),
            400: error_response("validation_error: a bad filter or page"),
            404: error_response("not_found: the schedule filter names no schedule of yours"),
        },
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

    @extend_schema(
        operation_id="backtests_create",
        request=BacktestInput,
        responses={
            201: BacktestOutput,
            400: error_response(CREATE_ERRORS),
            429: error_response("too_many_active_runs: too many queued or running"),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(BacktestInput, request.data)
        backtest = services.backtest_create(user=request_owner(request), **data)
        return Response(BacktestOutput(backtest).data, status=status.HTTP_201_CREATED)


class BacktestDetailApi(APIView):
    @extend_schema(
        operation_id="backtests_retrieve", responses={200: BacktestOutput, 404: NOT_FOUND}
    )
    def get(self, request: Request, pk: int) -> Response:
        backtest = selectors.backtest_get(user=request_owner(request), pk=pk)
        return Response(BacktestOutput(backtest).data)

    @extend_schema(operation_id="backtests_destroy", responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, pk: int) -> Response:
        backtest = selectors.backtest_get(user=request_owner(request), pk=pk)
        services.backtest_delete(backtest=backtest)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TradeOutput(serializers.Serializer):
    seq = serializers.IntegerField(help_text="0-based order of the trade")
    entry_time = serializers.IntegerField(help_text="Entry candle open time, epoch ms")
    exit_time = serializers.IntegerField(help_text="Exit candle open time, epoch ms")
    side = serializers.ChoiceField(choices=BacktestTrade.Side.choices)
    qty = DecimalText()
    entry_price = DecimalText()
    exit_price = DecimalText()
    fee = DecimalText(help_text="Both sides")
    pnl = DecimalText(help_text="Net of both fees")
    # "return" is a keyword, so the field is declared through the class namespace.
    locals()["return"] = serializers.FloatField(
        source="return_rate", help_text="pnl / entry notional"
    )
    exit_reason = serializers.ChoiceField(choices=BacktestTrade.ExitReason.choices)


class TradeQuery(PageQuery):
    page_size = serializers.IntegerField(
        min_value=1, max_value=MAX_TRADE_PAGE_SIZE, default=DEFAULT_TRADE_PAGE_SIZE
    )
    side = serializers.ChoiceField(choices=BacktestTrade.Side.choices, required=False)
    exit_reason = serializers.ChoiceField(choices=BacktestTrade.ExitReason.choices, required=False)


class BacktestTradesApi(APIView):
    """The trades of a backtest, in the order they happened (none until it is done)."""

    @extend_schema(
        operation_id="backtest_trades_list",
        parameters=[TradeQuery],
        responses={
            200: paginated("BacktestTradePage", TradeOutput(many=True)),
            400: error_response("validation_error: a bad filter or page"),
            404: NOT_FOUND,
        },
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
    @extend_schema(
        operation_id="backtests_cancel",
        request=None,
        responses={
            200: BacktestOutput,
            404: NOT_FOUND,
            409: error_response("not_active: it had already finished"),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        backtest = selectors.backtest_get(user=request_owner(request), pk=pk)
        was_active = backtest.is_active
        backtest = services.backtest_cancel(backtest=backtest)
        # The service leaves a finished backtest as it is, even one that finished meanwhile.
        if not was_active or backtest.status != RunStatus.CANCELLED:
            raise _not_active("backtest", backtest.status)
        return Response(BacktestOutput(backtest).data)


def _not_active(kind: str, current: str) -> AppError:
    return AppError(
        "not_active",
        f"The {kind} is no longer queued or running (it is {current}).",
        status=status.HTTP_409_CONFLICT,
        details={"status": [current]},
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
        return Response(BacktestOutput(again).data, status=status.HTTP_201_CREATED)


# --- Sweeps ------------------------------------------------------------------------------------


class SweepInput(BacktestInput):
    grid = serializers.DictField(
        help_text='{param: [values]} or {param: {"start", "stop", "step"}}; its '
        "cartesian product is run, at most SWEEP_MAX_COMBINATIONS combinations"
    )
    params = serializers.DictField(
        required=False, default=dict, help_text="Parameters fixed for every combination"
    )
    rank_by = serializers.ChoiceField(choices=services.RANKABLE_METRICS, default="sharpe")


class SweepOutput(RunStateOutput, RunSettingsOutput):
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
    ranking = services.sweep_ranking(sweep=sweep, limit=limit)
    return {
        **SweepOutput(sweep).data,
        "results": [_ranked(rank, run) for rank, run in enumerate(ranking, start=1)],
        "failures": FailedRunOutput(selectors.sweep_failure_list(sweep=sweep), many=True).data,
    }


def _ranked(rank: int, run: SweepRun) -> dict[str, Any]:
    return {"rank": rank, "params": run.params, "metrics": run.metrics, "status": run.status}


class SweepListCreateApi(APIView):
    @extend_schema(
        operation_id="sweeps_list",
        parameters=[SweepListQuery],
        responses={
            200: paginated("SweepPage", SweepOutput(many=True)),
            400: error_response("validation_error: a bad filter or page"),
        },
    )
    def get(self, request: Request) -> Response:
        query = validated(SweepListQuery, request.query_params)
        sweeps = selectors.sweep_list(
            user=request_owner(request), status=query.get("status"), strategy=query.get("strategy")
        )
        return paged(request, sweeps, SweepOutput, query)

    @extend_schema(
        operation_id="sweeps_create",
        request=SweepInput,
        responses={
            201: SweepDetailOutput,
            400: error_response(f"{CREATE_ERRORS}, invalid_grid, grid_too_large"),
            429: error_response("too_many_active_runs: too many queued or running"),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(SweepInput, request.data)
        sweep = services.sweep_create(user=request_owner(request), **data)
        return Response(sweep_detail(sweep), status=status.HTTP_201_CREATED)


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
        return Response(status=status.HTTP_204_NO_CONTENT)


class SweepCancelApi(APIView):
    @extend_schema(
        operation_id="sweeps_cancel",
        request=None,
        responses={
            200: SweepDetailOutput,
            404: NOT_FOUND,
            409: error_response("not_active: it had already finished"),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        sweep = selectors.sweep_get(user=request_owner(request), pk=pk)
        was_active = sweep.status in ACTIVE_STATUSES
        sweep = services.sweep_cancel(sweep=sweep)
        if not was_active or sweep.status != RunStatus.CANCELLED:
            raise _not_active("sweep", sweep.status)
        return Response(sweep_detail(sweep))


# --- Schedules ---------------------------------------------------------------------------------


class ScheduleInput(RunSettingsInput):
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


class ScheduleOutput(ScheduleHeadOutput, RunSettingsOutput):
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
    @extend_schema(
        operation_id="backtest_schedules_list",
        parameters=[PageQuery],
        responses={
            200: paginated("BacktestSchedulePage", ScheduleOutput(many=True)),
            400: error_response("validation_error: a bad page"),
        },
    )
    def get(self, request: Request) -> Response:
        query = validated(PageQuery, request.query_params)
        schedules = selectors.schedule_list(user=request_owner(request))
        return paged(request, schedules, ScheduleOutput, query)

    @extend_schema(
        operation_id="backtest_schedules_create",
        request=ScheduleInput,
        responses={
            201: ScheduleDetailOutput,
            400: error_response(
                "validation_error, malformed_request, invalid_cron, unknown_strategy, "
                "strategy_disabled, invalid_params, unknown_symbol"
            ),
            409: error_response("duplicate_name"),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(ScheduleInput, request.data)
        schedule = services.schedule_create(user=request_owner(request), **data)
        return Response(schedule_detail(schedule), status=status.HTTP_201_CREATED)


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
        return Response(status=status.HTTP_204_NO_CONTENT)


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
