"""What the backtest, sweep and schedule endpoints share: the run specification's request and
response fields, the errors they document, and the steps of their create and cancel views.

:class:`RunSpecInput` is the one serializer of a :class:`~backtests.spec.RunSpec`'s fields: the
API's requests extend it, and the pages' forms and the admin run it too, so all of them accept
and refuse the same values.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_owner
from backtests.models import RunStatus
from backtests.spec import split_spec
from markets.api import leverage_field, margin_mode_field
from markets.exchanges.markets import SUPPORTED_EXCHANGES
from markets.models import ExchangeAccount
from markets.timeframes import TIMEFRAMES
from tradingbot.api_utils import DecimalText, validated
from tradingbot.errors import AppError
from tradingbot.openapi import error_response

CREATE_ERRORS = (
    "validation_error (fields), malformed_request (not JSON), unknown_strategy, "
    "strategy_disabled, invalid_params (details per parameter), unknown_symbol, invalid_period, "
    "empty_period, period_too_long, spot_market (a leverage or a short on a spot market), "
    "invalid_leverage (above the market's maximum), unsupported_margin_mode (cross)"
)
NOT_FOUND = error_response("not_found: no such object, or another user's")
TOO_MANY = error_response("too_many_active_runs: too many queued or running")
NOT_ACTIVE = error_response("not_active: it had already finished")


def _positive(value: Decimal) -> None:
    if value <= 0:
        raise serializers.ValidationError("Ensure this value is greater than 0.")


def _below_one(value: Decimal) -> None:
    if value >= 1:
        raise serializers.ValidationError("Ensure this value is less than 1.")


def _rate_field(help_text: str, **limits: Any) -> serializers.DecimalField:
    """A rate or a fraction, to the scale the runs store them at (``backtests.models.RATE``)."""
    return serializers.DecimalField(max_digits=12, decimal_places=8, help_text=help_text, **limits)


def _level_field(example: str, **limits: Any) -> serializers.DecimalField:
    """A stop-loss or take-profit: a fraction (as stored), optional, null for none."""
    return _rate_field(
        f"A fraction, not a percent: {example}; null = none; absent = the strategy's default",
        required=False,
        allow_null=True,
        **limits,
    )


# The labels of exchange accounts' choices, so that the schema has one "exchange" enum.
_EXCHANGE_LABELS = dict(ExchangeAccount.Exchange.choices)
EXCHANGE_CHOICES = [(key, _EXCHANGE_LABELS.get(key, key)) for key in SUPPORTED_EXCHANGES]


# The fields of a RunSpec. Its docstring (and its subclasses', which have none) is the schema's
# description of every run request.
class RunSpecInput(serializers.Serializer):
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
    fee_rate = _rate_field(
        "Fee per side, a fraction: 0.001 = 0.1 %", min_value=Decimal(0), max_value=Decimal("0.1")
    )
    slippage_bps = serializers.DecimalField(
        max_digits=10,
        decimal_places=4,
        min_value=Decimal(0),
        max_value=Decimal(1000),
        default=Decimal(0),
        help_text="Price slippage per fill, in basis points",
    )
    position_size = _rate_field(
        "Fraction of equity per position, in (0, 1]",
        max_value=Decimal(1),
        default=Decimal(1),
        validators=[_positive],
    )
    stop_loss = _level_field("0.02 = 2 %, in (0, 1)", validators=[_positive, _below_one])
    take_profit = _level_field(
        "0.04 = 4 %, in (0, 10]", max_value=Decimal(10), validators=[_positive]
    )
    leverage = leverage_field("Perpetual swaps: 1 to the market's maximum (at most 125); 1 on spot")
    margin_mode = margin_mode_field()


# A RunSpec and the period of stored candles it runs over (a backtest's, a sweep's).
class PeriodInput(RunSpecInput):
    start = serializers.DateTimeField(help_text="ISO 8601; candles opened in [start, end)")
    end = serializers.DateTimeField()


@extend_schema_field({"type": "string", "format": "decimal"})
class RunSpecOutput(serializers.Serializer):
    strategy = serializers.CharField(source="strategy_id")
    params = serializers.JSONField()
    exchange = serializers.CharField()
    symbol = serializers.CharField()
    timeframe = serializers.CharField()
    initial_cash = DecimalText()
    fee_rate = DecimalText(help_text="A fraction: 0.001 = 0.1 %")
    slippage_bps = DecimalText()
    position_size = DecimalText()
    stop_loss = DecimalText(allow_null=True, help_text="A fraction: 0.02 = 2 %; null = none")
    take_profit = DecimalText(allow_null=True, help_text="A fraction: 0.04 = 4 %; null = none")
    leverage = serializers.IntegerField()
    margin_mode = serializers.CharField()


class RunStateOutput(serializers.Serializer):
    """The leading fields of a backtest or a sweep (declared bases come first in the output)."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    progress = serializers.FloatField(help_text="0..1")
    error = serializers.CharField(help_text="Why it failed; empty otherwise")


# --- the steps the views share -----------------------------------------------------------------


def create_schema(
    operation_id: str,
    input_class: type[RunSpecInput],
    output: type[serializers.Serializer],
    *,
    bad_request: str,
    others: dict[int, OpenApiResponse],
) -> Any:
    """The schema of a create view answered by :func:`create_response`: 201 with ``output``,
    400 for what its checks refuse (``bad_request``), and the ``others`` it may answer."""
    return extend_schema(
        operation_id=operation_id,
        request=input_class,
        responses={201: output, 400: error_response(bad_request), **others},
    )


def create_response(
    request: Request,
    input_class: type[RunSpecInput],
    create: Callable[..., Any],
    output: Callable[[Any], Any],
) -> Response:
    """Validate the request, hand its RunSpec and the rest of its fields to ``create`` for the
    requesting user, and answer 201 with ``output`` of what it made."""
    spec, rest = split_spec(validated(input_class, request.data))
    created = create(user=request_owner(request), spec=spec, **rest)
    return Response(output(created), status=status.HTTP_201_CREATED)


def cancel_schema(operation_id: str, output: type[serializers.Serializer]) -> Any:
    """The schema of a cancel view answered by :func:`cancel_response`."""
    return extend_schema(
        operation_id=operation_id,
        request=None,
        responses={200: output, 404: NOT_FOUND, 409: NOT_ACTIVE},
    )


def cancel_response(
    run: Any, *, kind: str, cancel: Callable[[Any], Any], output: Callable[[Any], Any]
) -> Response:
    """Cancel an active backtest or sweep: 200 with it, or 409 ``not_active`` when it had
    already finished (the service leaves it as it is, even one that finished meanwhile)."""
    was_active = run.is_active
    run = cancel(run)
    if not was_active or run.status != RunStatus.CANCELLED:
        raise AppError(
            "not_active",
            f"The {kind} is no longer queued or running (it is {run.status}).",
            status=status.HTTP_409_CONFLICT,
            details={"status": [run.status]},
        )
    return Response(output(run))


def deleted_response() -> Response:
    return Response(status=status.HTTP_204_NO_CONTENT)
