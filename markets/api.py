"""REST endpoints for exchange accounts (the trading venues), their balances, and candles.

Thin views: input serializers check the shape of a request, the services check the rest and
write; the selectors read, always scoped to the requesting user (another user's account is a
404). Amounts are decimal strings without trailing zeros (``"1000"``, ``"0.5"``).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_owner
from markets import perp, selectors, services
from markets.exchanges.markets import SUPPORTED_EXCHANGES
from markets.models import ExchangeAccount
from markets.timeframes import TIMEFRAMES
from tradingbot.api_utils import validated
from tradingbot.openapi import error_response

NOT_FOUND = error_response("not_found: no such exchange account, or another user's")


# --- the perp fields that backtests and bots share -----------------------------------------------


def leverage_field(help_text: str) -> serializers.IntegerField:
    """A perp's leverage: a whole number from 1 to the platform's maximum (the market's own
    maximum is the services' check); 1 by default, and the only value a spot market takes."""
    return serializers.IntegerField(
        min_value=1, max_value=perp.MAX_LEVERAGE, default=1, help_text=help_text
    )


def margin_mode_field() -> serializers.ChoiceField:
    """Isolated; cross is accepted here so that the services refuse it by name (not yet)."""
    return serializers.ChoiceField(
        choices=["isolated", "cross"],
        default="isolated",
        help_text="Perpetual swaps: isolated (cross is refused: not supported yet)",
    )


class ExchangeAccountOutput(serializers.Serializer):
    id = serializers.IntegerField()
    exchange = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # DRF pops declared fields
    mode = serializers.CharField()
    api_key_masked = serializers.CharField()
    has_api_secret = serializers.SerializerMethodField()
    has_passphrase = serializers.SerializerMethodField()
    verification = serializers.ChoiceField(
        choices=["verified", "unverified", "not_needed"],
        help_text="A live account's keys: verified (the exchange accepted them), unverified (the "
        "exchange could not be reached; checked again before a bot starts), not_needed (paper)",
    )
    verified_at = serializers.DateTimeField(allow_null=True)
    verification_error = serializers.CharField(help_text="Why the keys are unverified")
    created_at = serializers.DateTimeField()

    def get_has_api_secret(self, account: ExchangeAccount) -> bool:
        return bool(account.api_secret)

    def get_has_passphrase(self, account: ExchangeAccount) -> bool:
        return bool(account.passphrase)


class ExchangeAccountListCreateApi(APIView):
    @extend_schema_serializer(component_name="ExchangeAccountInput")
    class Input(serializers.Serializer):
        exchange = serializers.ChoiceField(choices=ExchangeAccount.Exchange.choices)
        label = serializers.CharField(max_length=100)  # type: ignore[assignment]
        mode = serializers.ChoiceField(choices=ExchangeAccount.Mode.choices)
        api_key = serializers.CharField(
            max_length=512, required=False, allow_blank=True, default=""
        )
        api_secret = serializers.CharField(
            max_length=512, required=False, allow_blank=True, default="", write_only=True
        )
        passphrase = serializers.CharField(
            max_length=512, required=False, allow_blank=True, default="", write_only=True
        )
        paper_balance = serializers.DictField(
            child=serializers.DecimalField(
                max_digits=28, decimal_places=12, min_value=0, max_value=10**12
            ),
            required=False,
            allow_empty=False,
            help_text='Paper mode only: starting balances, e.g. {"USDT": "10000"}.',
        )

    @extend_schema(
        operation_id="exchange_accounts_list",
        responses={
            200: inline_serializer(
                "ExchangeAccountList", {"results": ExchangeAccountOutput(many=True)}
            )
        },
    )
    def get(self, request: Request) -> Response:
        accounts = selectors.exchange_account_list(user=request_owner(request))
        return Response({"results": ExchangeAccountOutput(accounts, many=True).data})

    @extend_schema(
        request=Input,
        responses={
            201: ExchangeAccountOutput,
            400: error_response(
                "validation_error: a field is missing or invalid; exchange_auth_failed: the "
                "exchange rejected the live account's keys (its message; nothing saved)"
            ),
            409: error_response("duplicate_label"),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(self.Input, request.data)
        account = services.exchange_account_open(user=request_owner(request), **data)
        return Response(ExchangeAccountOutput(account).data, status=status.HTTP_201_CREATED)


class ExchangeAccountDetailApi(APIView):
    @extend_schema(responses={200: ExchangeAccountOutput, 404: NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        account = selectors.exchange_account_get(user=request_owner(request), pk=pk)
        return Response(ExchangeAccountOutput(account).data)

    @extend_schema(
        responses={
            204: None,
            404: NOT_FOUND,
            409: error_response("account_in_use: bots trade on it; details.bots names them"),
        }
    )
    def delete(self, request: Request, pk: int) -> Response:
        account = selectors.exchange_account_get(user=request_owner(request), pk=pk)
        services.exchange_account_delete(account=account)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExchangeAccountBalanceApi(APIView):
    """Balances from whichever exchange the account uses: the paper ledger or the real one."""

    @extend_schema_serializer(component_name="BalanceOutput")
    class Output(serializers.Serializer):
        balances = serializers.DictField(child=serializers.DictField(child=serializers.CharField()))

    @extend_schema(
        operation_id="exchange_account_balance",
        responses={
            200: Output,
            400: error_response("exchange_auth_failed: the exchange rejected the API key"),
            404: NOT_FOUND,
            503: error_response(
                "exchange_unavailable: network trouble, rate limit or maintenance; retry later"
            ),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        account = selectors.exchange_account_get(user=request_owner(request), pk=pk)
        return Response({"balances": services.exchange_account_balances(account=account)})


class CandlesApi(APIView):
    """The most recent closed candles for a chart, ascending, with paging back by ``before``."""

    @extend_schema_serializer(component_name="CandlesQuery")
    class Input(serializers.Serializer):
        exchange = serializers.ChoiceField(choices=SUPPORTED_EXCHANGES)
        symbol = serializers.CharField(max_length=40)
        timeframe = serializers.ChoiceField(choices=TIMEFRAMES)
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=200)
        before = serializers.IntegerField(
            min_value=0, required=False, help_text="Only candles opened before this epoch ms"
        )

        def validate(self, attrs: dict) -> dict:
            selectors.check_symbol(exchange=attrs["exchange"], symbol=attrs["symbol"])
            return attrs

    @extend_schema_serializer(component_name="CandlesOutput")
    class Output(serializers.Serializer):
        exchange = serializers.CharField()
        symbol = serializers.CharField()
        timeframe = serializers.CharField()
        candles = serializers.ListField(
            child=serializers.ListField(child=serializers.FloatField()),
            help_text="[open_time_ms, open, high, low, close, volume], ascending",
        )

    @extend_schema(
        operation_id="candles_list",
        parameters=[Input],
        responses={200: Output, 400: error_response("validation_error or unknown_symbol")},
    )
    def get(self, request: Request) -> Response:
        query = validated(self.Input, request.query_params)
        candles = selectors.candles_recent(**query)
        return Response(
            {**{k: query[k] for k in ("exchange", "symbol", "timeframe")}, "candles": candles}
        )
