"""REST endpoints for performance over time: the trader's profit by day, week or month with the
total equity curve, and one bot's equity and drawdown curve (see ``bots.performance`` for which
clock each uses). Times are epoch milliseconds (UTC); money is a decimal string in quote."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from bots import performance
from bots import selectors as bot_selectors
from bots.api import NOT_FOUND
from bots.api_books import EpochMs
from bots.models import Bot
from tradingbot.api_utils import DecimalText, validated
from tradingbot.openapi import error_response

PERIOD_CHOICES = tuple(performance.PERIODS)
EQUITY_SAMPLES = 2000
BAD_QUERY = error_response("validation_error: a bad period or limit (details per parameter)")


class PerformanceQuery(serializers.Serializer):
    period = serializers.ChoiceField(
        choices=PERIOD_CHOICES, default="day", help_text="day, week (from Monday) or month"
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=366, default=30, help_text="The newest buckets with a closed trade"
    )


class PeriodOutput(serializers.Serializer):
    start = EpochMs(help_text="The bucket's start: midnight in your time zone")
    profit = DecimalText(help_text="Realised PnL of the fills in it, net of fees")
    trades = serializers.IntegerField(help_text="Fills that realised a profit or a loss")
    wins = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True, help_text="wins / trades; null: none")


class SamplePointOutput(serializers.Serializer):
    time = serializers.IntegerField(help_text="Epoch ms")
    equity = DecimalText()


class BotSparklineOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    equity = SamplePointOutput(many=True, help_text="The last 60 points of the bot's curve")


class PerformanceOutput(serializers.Serializer):
    period = serializers.ChoiceField(choices=PERIOD_CHOICES)
    time_zone = serializers.CharField(help_text="Your time zone: the buckets' days")
    periods = PeriodOutput(many=True, help_text="Newest first")
    equity = SamplePointOutput(
        many=True, help_text="Your paper accounts' total equity, sampled each minute, oldest first"
    )
    bots = BotSparklineOutput(many=True)


class PerformanceApi(APIView):
    @extend_schema(
        operation_id="performance_retrieve",
        parameters=[PerformanceQuery],
        responses={200: PerformanceOutput, 400: BAD_QUERY},
    )
    def get(self, request: Request) -> Response:
        user = request_owner(request)
        query = validated(PerformanceQuery, request.query_params)
        zone = performance.trader_zone(user)
        periods = performance.performance_periods(
            user=user, period=query["period"], zone=zone, limit=query["limit"]
        )
        lines = performance.bots_sparklines(user=user)
        names = dict(Bot.objects.filter(pk__in=lines).values_list("pk", "name"))
        data: dict[str, Any] = {
            "period": query["period"],
            "time_zone": str(zone),
            "periods": periods,
            "equity": _points(performance.total_equity_series(user=user, limit=EQUITY_SAMPLES)),
            "bots": [
                {"id": pk, "name": names[pk], "equity": _points(line)}
                for pk, line in sorted(lines.items(), key=lambda item: names[item[0]])
            ],
        }
        return Response(PerformanceOutput(data).data)


def _points(series: list[tuple[int, Any]]) -> list[dict[str, Any]]:
    return [{"time": ms, "equity": value} for ms, value in series]


class BotEquityQuery(serializers.Serializer):
    period = serializers.ChoiceField(
        choices=PERIOD_CHOICES,
        required=False,
        help_text="Only the last day, week or month of the bot's curve (on its own clock)",
    )
    limit = serializers.IntegerField(min_value=1, max_value=10_000, default=2000)


class EquityPointOutput(serializers.Serializer):
    time = EpochMs(help_text="The candle's close (market time in a replay)")
    equity = DecimalText(help_text="realised + unrealised, in quote")
    realised = DecimalText()
    unrealised = DecimalText()
    drawdown = DecimalText(help_text="Below the highest equity so far, in quote (>= 0)")


class BotEquityOutput(serializers.Serializer):
    bot = serializers.IntegerField()
    clock = serializers.ChoiceField(
        choices=Bot.DataSource.choices, help_text="replay: times are the replay's market time"
    )
    points = EquityPointOutput(many=True, help_text="Oldest first")
    max_drawdown = DecimalText(help_text="The largest drawdown in the points, in quote")


class BotEquityApi(APIView):
    @extend_schema(
        operation_id="bot_equity_retrieve",
        parameters=[BotEquityQuery],
        responses={200: BotEquityOutput, 400: BAD_QUERY, 404: NOT_FOUND},
    )
    def get(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        query = validated(BotEquityQuery, request.query_params)
        window = performance.WINDOWS.get(query.get("period") or "")
        points = performance.bot_equity_series(bot=bot, limit=query["limit"], window=window)
        data = {
            "bot": bot.pk,
            "clock": bot.data_source,
            "points": points,
            "max_drawdown": max((p.drawdown for p in points), default=performance.ZERO),
        }
        return Response(BotEquityOutput(data).data)
