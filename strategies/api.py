from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from strategies import selectors


@extend_schema_serializer(component_name="StrategyOutput")
class StrategyOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    params = serializers.JSONField(source="params_schema")


class StrategyListApi(APIView):
    """The strategies a trader can use, with each one's parameter schema."""

    @extend_schema(
        operation_id="strategies_list",
        responses={200: inline_serializer("StrategyList", {"results": StrategyOutput(many=True)})},
    )
    def get(self, request: Request) -> Response:
        strategies = selectors.strategy_list_usable()
        return Response({"results": StrategyOutput(strategies, many=True).data})
