"""A bot's chart as its page draws it: the last candles up to the bot's clock, its fills as
markers, the entry and liquidation prices and the strategy's indicators (see ``bots.api`` for
the conventions). The page reads it again as candles close, to move the indicators on."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from bots import selectors as bot_selectors
from bots.api import NOT_FOUND


class ChartMarkerOutput(serializers.Serializer):
    time = serializers.IntegerField(help_text="Open time (epoch ms) of the fill's candle")
    side = serializers.ChoiceField(choices=("buy", "sell"))
    price = serializers.FloatField()
    qty = serializers.FloatField()


class IndicatorOutput(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # DRF pops declared fields
    pane = serializers.ChoiceField(choices=("price", "lower"))
    color = serializers.CharField(allow_null=True)
    style = serializers.ChoiceField(choices=("line", "dashed", "histogram"))  # type: ignore[assignment]
    data = serializers.ListField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[open time (epoch ms), value] pairs, ascending, from the chart's first candle",
    )


class BotChartOutput(serializers.Serializer):
    candles = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="[open time (epoch ms), open, high, low, close, volume], ascending",
    )
    markers = ChartMarkerOutput(many=True)
    entry_price = serializers.FloatField(allow_null=True)
    liquidation_price = serializers.FloatField(allow_null=True)
    timeframe_ms = serializers.IntegerField()
    indicators = IndicatorOutput(many=True)


class BotChartApi(APIView):
    @extend_schema(
        operation_id="bot_chart",
        responses={200: BotChartOutput, 404: NOT_FOUND},
        description=(
            "The bot's last 200 closed candles (up to a replay's clock), its fills among them, "
            "the open position's entry and liquidation prices and its strategy's indicators."
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        return Response(bot_selectors.bot_chart(bot))
