"""REST endpoint for the trader's manual action on a bot's position: "close position now" (see
``bots.api`` for the conventions)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from bots import selectors as bot_selectors
from bots import services
from bots.api import NOT_FOUND, BotOutput
from bots.api_books import BotOrderOutput
from tradingbot.openapi import error_response


class BotClosePositionOutput(serializers.Serializer):
    order = BotOrderOutput(help_text="The closing market order as booked (reason close)")
    bot = BotOutput(help_text="The bot after the close: its position, its status (unchanged)")


class BotClosePositionApi(APIView):
    @extend_schema(
        operation_id="bots_close_position",
        request=None,
        responses={
            200: BotClosePositionOutput,
            404: NOT_FOUND,
            409: error_response(
                "no_position: the bot holds nothing; below_minimum: what it holds is too small "
                "for the exchange to take; bot_busy: a tick holds the bot, try again; "
                "order_rejected: the exchange refused the order (the bot's log says why)"
            ),
            503: error_response("exchange_unavailable: the exchange cannot be reached"),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        user = request_owner(request)
        bot = bot_selectors.bot_get(user=user, pk=pk)
        order = services.bot_close_position(bot=bot, by=user)
        bot = bot_selectors.bot_get(user=user, pk=pk)
        return Response({"order": BotOrderOutput(order).data, "bot": BotOutput(bot).data})
