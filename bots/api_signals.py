"""REST endpoints of signals in (``bots.services.signals_in``): a bot's webhook token, its IP
allow-list and the signals it received (the trader's, session or API token), and the webhook
itself, ``POST /api/signals/<token>``, which takes no session, cookie or header: the token in
its path is the credential (see ``bots.api`` for the other conventions)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from accounts.services import client_ip
from bots import selectors as bot_selectors
from bots.api import NOT_FOUND
from bots.api_books import BotOrderOutput, EpochMs
from bots.models import Signal
from bots.services.signal_access import (
    MAX_ALLOWED_NETWORKS,
    signal_allow_list_set,
    signal_token_revoke,
    signal_token_rotate,
)
from bots.services.signals_in import signal_receive
from tradingbot.api_utils import PageQuery, json_body, page_schema, paged, validated
from tradingbot.openapi import error_response
from tradingbot.parsers import JSONParser


class SignalTokenOutput(serializers.Serializer):
    token = serializers.CharField(help_text="The webhook's secret token: shown this once")
    webhook_url = serializers.CharField(help_text="Where to post signals (the token in it)")


class SignalAllowListInput(serializers.Serializer):
    networks = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=MAX_ALLOWED_NETWORKS,
        help_text="IP networks or addresses (203.0.113.0/24, 2001:db8::1); empty: any address",
    )  # fmt: skip


class SignalOutput(serializers.Serializer):
    id = serializers.CharField(source="signal_id", help_text="The sender's id")
    action = serializers.ChoiceField(choices=Signal.Action.choices)
    target = serializers.IntegerField(help_text="The position it asked for: 1, 0 or -1")
    outcome = serializers.ChoiceField(choices=Signal.Outcome.choices)
    message = serializers.CharField()
    received_at = EpochMs(help_text="Epoch ms")
    order = BotOrderOutput(allow_null=True, help_text="The market order it placed, if any")


class SignalReceiveOutput(serializers.Serializer):
    signal = SignalOutput()
    duplicate = serializers.BooleanField(
        help_text="True: this id was acted on before; nothing was traded now"
    )


def webhook_url(request: Request, token: str) -> str:
    return request.build_absolute_uri(reverse("api-signal-receive", args=[token]))


class SignalTokenApi(APIView):
    @extend_schema(
        operation_id="bots_signal_token_rotate",
        request=None,
        responses={200: SignalTokenOutput, 404: NOT_FOUND},
        description="Make the bot's signal webhook token (enabling its signals), or replace it: "
        "the old token stops working at once. The token is answered this once.",
    )
    def post(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        token = signal_token_rotate(bot=bot)
        return Response({"token": token, "webhook_url": webhook_url(request, token)})

    @extend_schema(
        operation_id="bots_signal_token_revoke",
        responses={204: None, 404: NOT_FOUND},
        description="Disable the bot's signals: its token stops working.",
    )
    def delete(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        signal_token_revoke(bot=bot)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SignalAllowListApi(APIView):
    @extend_schema(
        operation_id="bots_signal_allow_list_set",
        request=SignalAllowListInput,
        responses={
            200: SignalAllowListInput,
            400: error_response("validation_error: not a list of IP networks"),
            404: NOT_FOUND,
        },
    )
    def put(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        data = validated(SignalAllowListInput, json_body(request))
        return Response({"networks": signal_allow_list_set(bot=bot, networks=data["networks"])})


class BotSignalsApi(APIView):
    @page_schema("bot_signals_list", "SignalPage", SignalOutput(many=True), PageQuery,
                 not_found=NOT_FOUND)  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        bot = bot_selectors.bot_get(user=request_owner(request), pk=pk)
        query = validated(PageQuery, request.query_params)
        return paged(request, bot_selectors.bot_signal_list(bot=bot), SignalOutput, query)


class TextJSONParser(JSONParser):
    """TradingView posts its alert message as ``text/plain`` unless it is valid JSON: the
    webhook reads such a body as JSON too (and refuses it, 400, when it is not)."""

    media_type = "text/plain"


TRADINGVIEW_EXAMPLE = {"action": "buy", "id": "BTCUSDT-5-1700000000000", "ticker": "BTCUSDT",
                       "price": "37000.5"}  # fmt: skip


class SignalReceiveApi(APIView):
    # The token in the path is the credential: no session or API token is read, so there is
    # no session to ride on and nothing for CSRF to protect (DRF exempts its views from
    # Django's CSRF check; its own check belongs to SessionAuthentication, not used here).
    authentication_classes: tuple[Any, ...] = ()
    permission_classes = (AllowAny,)
    parser_classes = (JSONParser, TextJSONParser)

    @extend_schema(
        operation_id="signals_receive",
        auth=[],
        request={"application/json": {"type": "object", "additionalProperties": True,
                                      "required": ["action", "id"],
                                      "properties": {
                                          "action": {"type": "string",
                                                     "enum": [a.value for a in Signal.Action]},
                                          "id": {"type": "string", "maxLength": 64},
                                          "ticker": {"type": "string"}}}},
        examples=[OpenApiExample("TradingView alert", value=TRADINGVIEW_EXAMPLE,
                                 request_only=True)],
        responses={
            200: SignalReceiveOutput,
            400: error_response("validation_error (action, id, body), wrong_symbol (ticker "
                                "not the bot's market), short_on_spot, malformed_request"),
            403: error_response("ip_not_allowed: the address is not in the bot's allow-list"),
            404: error_response("not_found: no bot's signals take this token"),
            409: error_response("bot_not_running: start the bot first; bot_busy: try again"),
            429: error_response("rate_limited: too many signals for this bot (Retry-After)"),
            503: error_response("exchange_unavailable: the signal stays received; send again"),
        },
    )  # fmt: skip
    def post(self, request: Request, token: str) -> Response:
        receipt = signal_receive(token=token, body=request.data, ip=client_ip(request))
        body = {"signal": SignalOutput(receipt.signal).data, "duplicate": receipt.duplicate}
        return Response(body)
