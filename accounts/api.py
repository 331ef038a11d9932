"""REST endpoints of the accounts app: one view per operation, explicit input/output serializers."""

from __future__ import annotations

from django.contrib.auth import logout
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiToken, ExchangeAccount, User
from tradingbot.openapi import error_response


def _owner(request: Request) -> User:
    """The authenticated user (the default permission class has already refused anonymous)."""
    assert isinstance(request.user, User)
    return request.user


class UserOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()


class LoginApi(APIView):
    """Exchange email and password for an API token."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema_serializer(component_name="LoginInput")
    class Input(serializers.Serializer):
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=1024, trim_whitespace=False)

    @extend_schema_serializer(component_name="LoginOutput")
    class Output(serializers.Serializer):
        token = serializers.CharField()
        expires_at = serializers.DateTimeField()
        user = UserOutput()

    @extend_schema(
        request=Input,
        responses={
            200: Output,
            400: error_response("validation_error or malformed_request"),
            401: error_response("invalid_credentials: wrong email or password"),
            429: error_response("too_many_attempts: throttled, see Retry-After"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = _validated(self.Input, request)
        user = services.auth_check_credentials(
            request=request._request, email=data["email"], password=data["password"]
        )
        issued = services.api_token_issue(user=user)
        body = {"token": issued.key, "expires_at": issued.token.expires_at, "user": user}
        return Response(self.Output(body).data)


class LogoutApi(APIView):
    """Revoke the token this request used, or end the session."""

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            services.api_token_revoke(token=request.auth)
        else:
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    @extend_schema_serializer(component_name="MeOutput")
    class Output(UserOutput):
        display_name = serializers.CharField()
        is_staff = serializers.BooleanField()

    @extend_schema(responses={200: Output})
    def get(self, request: Request) -> Response:
        return Response(self.Output(request.user).data)


class ExchangeAccountOutput(serializers.Serializer):
    id = serializers.IntegerField()
    exchange = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # DRF pops declared fields
    mode = serializers.CharField()
    api_key_masked = serializers.CharField()
    has_api_secret = serializers.SerializerMethodField()
    has_passphrase = serializers.SerializerMethodField()
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

    @extend_schema(
        operation_id="exchange_accounts_list",
        responses={
            200: inline_serializer(
                "ExchangeAccountList", {"results": ExchangeAccountOutput(many=True)}
            )
        },
    )
    def get(self, request: Request) -> Response:
        accounts = selectors.exchange_account_list(user=_owner(request))
        return Response({"results": ExchangeAccountOutput(accounts, many=True).data})

    @extend_schema(
        request=Input,
        responses={
            201: ExchangeAccountOutput,
            400: error_response("validation_error: a field is missing or invalid"),
            409: error_response("duplicate_label"),
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(self.Input, request)
        account = services.exchange_account_create(user=_owner(request), **data)
        return Response(ExchangeAccountOutput(account).data, status=status.HTTP_201_CREATED)


class ExchangeAccountDetailApi(APIView):
    @extend_schema(responses={200: ExchangeAccountOutput})
    def get(self, request: Request, pk: int) -> Response:
        account = selectors.exchange_account_get(user=_owner(request), pk=pk)
        return Response(ExchangeAccountOutput(account).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        account = selectors.exchange_account_get(user=_owner(request), pk=pk)
        services.exchange_account_delete(account=account)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _validated(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
