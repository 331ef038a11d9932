"""REST endpoints for the bots: configure, start, stop, and read their books.

Thin views: input serializers check the shape and bounds of a request, the services check the
rest (account, strategy, parameters, market, replay candles, risk values, transitions) and
write; the selectors read, always scoped to the requesting user (another user's object is a 404).

Amounts are decimal strings without trailing zeros (``"1000"``, ``"0.5"``); the times of trades
and events are epoch milliseconds (UTC), as the live updates send them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import (
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from accounts.models import User
from bots import selectors as bot_selectors
from bots import services
from bots.models import Bot, Position
from bots.services.lifecycle import MAX_REPLAY_SPEED
from markets import selectors as market_selectors
from markets.api import leverage_field, margin_mode_field
from markets.timeframes import TIMEFRAMES
from tradingbot.api_utils import DecimalText, PageQuery, page_schema, paged, validated
from tradingbot.openapi import error_response

NOT_FOUND = error_response("not_found: no such bot, or another user's")
BOT_RUNNING = "bot_running: stop the bot first"
CONFIG_ERRORS = (
    "validation_error (fields, also the risk values and name), malformed_request (not JSON), "
    "unknown_strategy, strategy_disabled, invalid_params (details per parameter), "
    "unknown_symbol, empty_period (a replay without stored candles from its start on), "
    "name_taken; leverage above the market's or the account's maximum, a leverage, "
    "liquidation buffer or short on a spot market, and cross margin are validation_error on "
    "their field"
)
MAX_ID = 2**63 - 1


def _positive(value: Decimal | float) -> None:
    if value <= 0:
        raise serializers.ValidationError("Ensure this value is greater than 0.")


def _below_hundred(value: Decimal) -> None:
    if value >= 100:
        raise serializers.ValidationError("Ensure this value is less than 100.")


class BotDataSourceInput(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=Bot.DataSource.choices,
        help_text="live: the exchange's candles as they close; replay: stored candles, on a "
        "paper account",
    )
    start = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Replay only: market time to start at"
    )
    speed = serializers.FloatField(
        required=False,
        allow_null=True,
        max_value=MAX_REPLAY_SPEED,
        validators=[_positive],
        help_text="Replay only: candles a minute (60 = one candle a second)",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A live bot's GET shows start and speed as null, so null is accepted for it (PUT back).
        replay = attrs["kind"] == Bot.DataSource.REPLAY
        wrong = {
            name: ["A replay needs this." if replay else "Only a replay takes this."]
            for name in ("start", "speed")
            if (attrs.get(name) is None) == replay
        }
        if wrong:
            raise serializers.ValidationError(wrong)
        return attrs


def _amount(help_text: str, *, max_value: int = 10**12, **options: Any) -> serializers.DecimalField:
    """A positive amount, nullable, of at most ``max_value`` and 12 decimal places (as stored)."""
    return serializers.DecimalField(
        max_digits=28,
        decimal_places=12,
        allow_null=True,
        max_value=Decimal(max_value),
        validators=[_positive],
        help_text=help_text,
        **options,
    )


class BotOrderSizeInput(serializers.Serializer):
    fraction = _amount("Of the free quote balance, in (0, 1]", max_value=1, required=False)
    quote = _amount("A fixed amount of quote currency per order", required=False)


class BotInput(serializers.Serializer):
    """What a trader chooses for a bot (create and PUT); PATCH takes any subset."""

    name = serializers.CharField(max_length=100, help_text="Unique among your bots")
    exchange_account = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text="The id of one of your exchange accounts"
    )
    symbol = serializers.CharField(
        max_length=40, help_text="A spot market (BTC/USDT) or a linear perp (BTC/USDT:USDT)"
    )
    timeframe = serializers.ChoiceField(choices=TIMEFRAMES)
    strategy = serializers.CharField(max_length=64, help_text="A key of GET /api/strategies")
    params = serializers.DictField(
        required=False, default=dict, help_text="Strategy parameters; missing ones take defaults"
    )
    data_source = BotDataSourceInput(
        required=False, default=lambda: {"kind": Bot.DataSource.LIVE}, help_text="Default live"
    )
    order_size = BotOrderSizeInput(
        required=False,
        default=lambda: {"fraction": Decimal(1)},
        help_text='Exactly one of fraction and quote; default {"fraction": 1}',
    )
    max_position = _amount("Largest position value, in quote currency; null = none", default=None)
    stop_loss_pct = serializers.DecimalField(
        max_digits=7,
        decimal_places=3,
        allow_null=True,
        default=None,
        validators=[_positive, _below_hundred],
        help_text="Percent below the entry price, in (0, 100): 2 = 2 %; null = none",
    )
    take_profit_pct = serializers.DecimalField(
        max_digits=7,
        decimal_places=3,
        allow_null=True,
        default=None,
        validators=[_positive],
        help_text="Percent above the entry price, in (0, 10000); null = none",
    )
    daily_loss_limit = _amount(
        "Stop and flatten the bot when today's PnL reaches minus this (quote); null = none",
        default=None,
    )
    leverage = leverage_field(
        "Perpetual swaps: 1 to the market's maximum (and your account's cap); 1 on spot"
    )
    margin_mode = margin_mode_field()
    liquidation_buffer_pct = serializers.DecimalField(
        max_digits=7,
        decimal_places=3,
        allow_null=True,
        default=None,
        validators=[_positive, _below_hundred],
        help_text="Perpetual swaps: refuse an entry whose liquidation price is nearer than this "
        "percent of the entry price; null = none",
    )

    def validate_order_size(self, value: dict[str, Any]) -> dict[str, Any]:
        if sum(value.get(kind) is not None for kind in ("fraction", "quote")) != 1:
            raise serializers.ValidationError("Give exactly one of fraction and quote.")
        return value


def bot_config(user: User, data: dict[str, Any]) -> services.BotConfig:
    """The service's configuration for validated ``BotInput`` data; another user's exchange
    account is a 404."""
    account = market_selectors.exchange_account_get(user=user, pk=data["exchange_account"])
    source, size = data["data_source"], data["order_size"]
    kind = (
        Bot.OrderSizeKind.FRACTION if size.get("fraction") is not None else Bot.OrderSizeKind.QUOTE
    )
    return services.BotConfig(
        name=data["name"],
        exchange_account=account,
        symbol=data["symbol"],
        timeframe=data["timeframe"],
        strategy=data["strategy"],
        params=data["params"],
        data_source=source["kind"],
        replay_start=source.get("start"),
        replay_speed=source.get("speed"),
        order_size_kind=kind,
        order_size=size[kind],
        max_position=data["max_position"],
        stop_loss_pct=data["stop_loss_pct"],
        take_profit_pct=data["take_profit_pct"],
        daily_loss_limit=data["daily_loss_limit"],
        leverage=data["leverage"],
        margin_mode=data["margin_mode"],
        liquidation_buffer_pct=data["liquidation_buffer_pct"],
    )


class BotDataSourceOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Bot.DataSource.choices)
    start = serializers.DateTimeField(allow_null=True, help_text="Replay only; null when live")
    speed = serializers.FloatField(allow_null=True, help_text="Replay only: candles a minute")


class BotOrderSizeOutput(serializers.Serializer):
    fraction = DecimalText(required=False, help_text="Present when sized by fraction")
    quote = DecimalText(required=False, help_text="Present when sized in quote currency")


class BotPositionSummaryOutput(serializers.Serializer):
    side = serializers.ChoiceField(choices=Position.Side.choices, help_text="Spot: always long")
    qty = DecimalText(help_text="Never negative: a short is side short")
    entry_price = DecimalText(allow_null=True)
    pnl = DecimalText(help_text="Realised, cumulative, net of fees (and of funding)")
    unrealized_pnl = DecimalText(
        help_text="The quantity held, marked to the last close (a perp's: to the mark price)"
    )
    mark_price = DecimalText(allow_null=True)
    leverage = serializers.IntegerField(help_text="1 on spot")
    margin = DecimalText(help_text="Perpetual swaps: the isolated margin held, in quote")
    liquidation_price = DecimalText(allow_null=True, help_text="Perpetual swaps; null when flat")
    funding = DecimalText(help_text="Perpetual swaps: funding received, cumulative (- = paid)")


FLAT = {
    "side": "long", "qty": "0", "entry_price": None, "pnl": "0", "unrealized_pnl": "0",
    "mark_price": None, "leverage": 1, "margin": "0", "liquidation_price": None, "funding": "0",
}  # fmt: skip


class BotOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Bot.Status.choices)
    state = serializers.ChoiceField(
        choices=[*Bot.Status.values, "degraded"],
        help_text="What to show: the status, or degraded for a running bot whose exchange "
        "keeps failing (see health_reason)",
    )
    health = serializers.ChoiceField(choices=["ok", "degraded"])
    health_reason = serializers.SerializerMethodField()
    last_error = serializers.CharField(help_text="Why it is in error; empty otherwise")
    exchange_account = serializers.IntegerField(source="exchange_account_id")
    symbol = serializers.CharField()
    timeframe = serializers.CharField()
    strategy = serializers.CharField(source="strategy_id")
    params = serializers.JSONField()
    data_source = serializers.SerializerMethodField()
    order_size = serializers.SerializerMethodField()
    max_position = DecimalText(allow_null=True)
    stop_loss_pct = DecimalText(allow_null=True)
    take_profit_pct = DecimalText(allow_null=True)
    daily_loss_limit = DecimalText(allow_null=True)
    leverage = serializers.IntegerField()
    margin_mode = serializers.CharField()
    liquidation_buffer_pct = DecimalText(allow_null=True)
    position = serializers.SerializerMethodField()
    signals_enabled = serializers.BooleanField(
        help_text="Its signal webhook takes signals (POST /api/bots/<id>/signal-token)"
    )
    signal_allowed_ips = serializers.ListField(
        child=serializers.CharField(), help_text="Networks the webhook accepts; empty: any"
    )
    signal_target = serializers.IntegerField(
        allow_null=True, help_text="The position the last signal asked for: 1, 0, -1"
    )
    last_tick_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_health_reason(self, bot: Bot) -> str:
        """The last exchange failure of a degraded bot; empty otherwise."""
        return bot.degraded_reason if bot.is_degraded else ""

    @extend_schema_field(BotDataSourceOutput)
    def get_data_source(self, bot: Bot) -> dict[str, Any]:
        ms = bot.replay_start_ms
        start = datetime.fromtimestamp(ms / 1000, tz=UTC) if ms is not None else None
        source = {"kind": bot.data_source, "start": start, "speed": bot.replay_speed}
        return BotDataSourceOutput(source).data

    @extend_schema_field(BotOrderSizeOutput)
    def get_order_size(self, bot: Bot) -> dict[str, str]:
        return {bot.order_size_kind: format(Decimal(bot.order_size).normalize(), "f")}

    @extend_schema_field(BotPositionSummaryOutput)
    def get_position(self, bot: Bot) -> dict[str, Any]:
        position = bot_selectors.bot_position(bot)
        return BotPositionSummaryOutput(position).data if position is not None else dict(FLAT)


class BotListQuery(PageQuery):
    status = serializers.ChoiceField(choices=Bot.Status.choices, required=False)


class BotListCreateApi(APIView):
    @page_schema("bots_list", "BotPage", BotOutput(many=True), BotListQuery)
    def get(self, request: Request) -> Response:
        query = validated(BotListQuery, request.query_params)
        bots = bot_selectors.bot_list(user=request_owner(request), status=query.get("status"))
        return paged(request, bots, BotOutput, query)

    @extend_schema(
        operation_id="bots_create",
        request=BotInput,
        responses={
            201: BotOutput,
            400: error_response(CONFIG_ERRORS),
            404: error_response("not_found: the exchange account is not one of yours"),
        },
    )
    def post(self, request: Request) -> Response:
        user = request_owner(request)
        data = validated(BotInput, request.data)
        bot = services.bot_create(user=user, config=bot_config(user, data))
        return Response(BotOutput(bot).data, status=status.HTTP_201_CREATED)


def _bot_schema(operation_id: str, *, request: Any, bad_request: str, conflict: str) -> Any:
    """An operation on one bot, answered with the bot as it left it: 400 ``bad_request``, 404 for
    another user's bot, 409 ``conflict`` (the bot's status does not allow it)."""
    return extend_schema(
        operation_id=operation_id,
        request=request,
        responses={
            200: BotOutput,
            400: error_response(bad_request),
            404: NOT_FOUND,
            409: error_response(conflict),
        },
    )


def _changes(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Send an object of fields."]})
    return data


class BotDetailApi(APIView):
    @extend_schema(operation_id="bots_retrieve", responses={200: BotOutput, 404: NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        return Response(BotOutput(bot).data)

    @_bot_schema("bots_update", request=BotInput, bad_request=CONFIG_ERRORS, conflict=BOT_RUNNING)
    def put(self, request: Request, pk: int) -> Response:
        user = request_owner(request)
        bot = bot_selectors.bot_get(user=user, pk=pk)
        data = validated(BotInput, request.data)
        return self._update(user, bot, data)

    @_bot_schema(
        "bots_partial_update", request=BotInput, bad_request=CONFIG_ERRORS, conflict=BOT_RUNNING
    )
    def patch(self, request: Request, pk: int) -> Response:
        user = request_owner(request)
        bot = bot_selectors.bot_get(user=user, pk=pk)
        # The bot as it is, with the fields sent replacing whole ones; then checked as a PUT.
        current = {name: value for name, value in BotOutput(bot).data.items()
                   if name in BotInput().fields}  # fmt: skip
        data = validated(BotInput, {**current, **_changes(request.data)})
        return self._update(user, bot, data)

    def _update(self, user: User, bot: Bot, data: dict[str, Any]) -> Response:
        bot = services.bot_update(bot=bot, config=bot_config(user, data))
        return Response(BotOutput(bot).data)

    @extend_schema(
        operation_id="bots_destroy",
        responses={204: None, 404: NOT_FOUND, 409: error_response(BOT_RUNNING)},
    )
    def delete(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        services.bot_delete(bot=bot)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BotStartInput(serializers.Serializer):
    confirm_live = serializers.BooleanField(
        default=False,
        help_text="Required (true) to start a bot on a live account: it trades real money",
    )


class BotStartApi(APIView):
    @extend_schema(
        operation_id="bots_start",
        request=BotStartInput,
        responses={
            200: BotOutput,
            400: error_response(
                "strategy_disabled: staff disabled the strategy since; confirm_live_required: "
                "a live account's bot needs confirm_live: true; exchange_auth_failed: the "
                "exchange rejected the unverified account's keys"
            ),
            404: NOT_FOUND,
            409: error_response("invalid_transition: the bot is not stopped or in error"),
            503: error_response(
                "exchange_unreachable: the unverified account's keys cannot be checked"
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        data = validated(BotStartInput, request.data)
        bot = services.bot_start(bot=bot, confirm_live=data["confirm_live"])
        return Response(BotOutput(bot).data)


class BotStopInput(serializers.Serializer):
    flatten = serializers.BooleanField(
        default=False, help_text="Also close the position with a market sell"
    )


class BotStopApi(APIView):
    @_bot_schema(
        "bots_stop",
        request=BotStopInput,
        bad_request="validation_error: flatten is not a boolean",
        conflict="invalid_transition: the bot is already stopped",
    )
    def post(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        data = validated(BotStopInput, request.data)
        user = request_owner(request)
        bot = services.bot_stop(bot=bot, flatten=data["flatten"], by=user)
        return Response(BotOutput(bot).data)
