"""REST endpoints of the accounts app: one view per operation, explicit input/output serializers."""

from __future__ import annotations

from django.contrib.auth import logout
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ApiToken
from tradingbot.api_utils import json_body, validated
from tradingbot.openapi import error_response


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
            415: error_response("unsupported_media_type: the body is not JSON (even if empty)"),
            429: error_response("too_many_attempts: throttled, see Retry-After"),
            503: error_response("service_unavailable: Redis is down, login cannot be throttled"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = validated(self.Input, json_body(request))
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
