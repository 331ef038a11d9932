"""REST endpoints for what a bot holds: its positions, orders, trades and events, a page at a
time, newest first (see ``bots.api`` for the conventions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from bots import selectors as bot_selectors
from bots.api import NOT_FOUND
from bots.models import Bot, BotEvent, Order, Position
from tradingbot.api_utils import DecimalText, PageQuery, page_schema, paged, validated


@extend_schema_field({"type": "integer", "format": "int64"})
class EpochMs(serializers.Field):
    """A time as epoch milliseconds (UTC)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: datetime) -> int:
        return int(value.timestamp() * 1000)


class BotPositionOutput(serializers.Serializer):
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=Position.Side.choices, help_text="Spot: always long")
    qty = DecimalText(help_text="Never negative: a short is side short")
    entry_price = DecimalText(allow_null=True)
    entry_fees = DecimalText(help_text="Fees paid to open the quantity held, in quote")
    pnl = DecimalText(help_text="Realised, cumulative, net of fees (and of funding)")
    unrealized_pnl = DecimalText()
    mark_price = DecimalText(allow_null=True, help_text="The last close (a perp's mark price)")
    leverage = serializers.IntegerField(help_text="1 on spot")
    margin = DecimalText(help_text="Perpetual swaps: the isolated margin held, in quote")
    liquidation_price = DecimalText(allow_null=True, help_text="Perpetual swaps; null when flat")
    funding = DecimalText(help_text="Perpetual swaps: funding received, cumulative (- = paid)")
    updated_at = serializers.DateTimeField()


class BotOrderOutput(serializers.Serializer):
    client_order_id = serializers.CharField()
    side = serializers.ChoiceField(choices=Order.Side.choices)
    order_type = serializers.ChoiceField(choices=Order.Type.choices)
    price = DecimalText(allow_null=True, help_text="Limit price; null for a market order")
    qty = DecimalText()
    filled_qty = DecimalText()
    average_price = DecimalText(allow_null=True)
    status = serializers.ChoiceField(choices=Order.Status.choices)
    reason = serializers.CharField(help_text="signal, stop_loss, take_profit, stop, ...")
    created_at = serializers.DateTimeField()


class BotTradeOutput(serializers.Serializer):
    side = serializers.ChoiceField(choices=Order.Side.choices)
    qty = DecimalText()
    price = DecimalText()
    fee = DecimalText(help_text="In quote currency")
    pnl = DecimalText(help_text="Realised on a sell, net of both sides' fees; 0 on a buy")
    time = EpochMs(help_text="Fill time, epoch ms (market time in a replay)")


class BotEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    time = EpochMs()
    level = serializers.ChoiceField(choices=BotEvent.Level.choices)
    kind = serializers.CharField()
    message = serializers.CharField()
    data = serializers.JSONField()  # type: ignore[assignment]  # DRF pops declared fields


class BotOrderQuery(PageQuery):
    status = serializers.ChoiceField(
        choices=Order.Status.choices,
        required=False,
        help_text="open = pending or open (what the bot still waits on); the others exactly",
    )


class BotEventQuery(PageQuery):
    level = serializers.ChoiceField(choices=BotEvent.Level.choices, required=False)


def _book_schema(
    operation_id: str, page: str, item: type[serializers.Serializer], query: type[PageQuery]
) -> Any:
    return page_schema(operation_id, page, item(many=True), query, not_found=NOT_FOUND)


def _bot_and_query(request: Request, pk: int, query: type[PageQuery]) -> tuple[Bot, dict[str, Any]]:
    """The user's bot ``pk`` (another user's bot is a 404) and the validated ``query``."""
    bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
    return bot, validated(query, request.query_params)


class BotPositionsApi(APIView):
    @_book_schema("bot_positions_list", "BotPositionPage", BotPositionOutput, PageQuery)
    def get(self, request: Request, pk: int) -> Response:
        bot, query = _bot_and_query(request, pk, PageQuery)
        positions = bot_selectors.bot_position_list(bot=bot)
        return paged(request, positions, BotPositionOutput, query)


class BotOrdersApi(APIView):
    @_book_schema("bot_orders_list", "BotOrderPage", BotOrderOutput, BotOrderQuery)
    def get(self, request: Request, pk: int) -> Response:
        bot, query = _bot_and_query(request, pk, BotOrderQuery)
        orders = bot_selectors.bot_order_list(bot=bot, status=query.get("status"))
        return paged(request, orders, BotOrderOutput, query)


class BotTradesApi(APIView):
    @_book_schema("bot_trades_list", "BotTradePage", BotTradeOutput, PageQuery)
    def get(self, request: Request, pk: int) -> Response:
        bot, query = _bot_and_query(request, pk, PageQuery)
        trades = bot_selectors.bot_trade_list(bot=bot)
        return paged(request, trades, BotTradeOutput, query)


class BotEventsApi(APIView):
    @_book_schema("bot_events_list", "BotEventPage", BotEventOutput, BotEventQuery)
    def get(self, request: Request, pk: int) -> Response:
        bot, query = _bot_and_query(request, pk, BotEventQuery)
        events = bot_selectors.bot_event_list(bot=bot, level=query.get("level"))
        return paged(request, events, BotEventOutput, query)
