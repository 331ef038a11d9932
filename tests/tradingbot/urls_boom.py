"""Test-only URLconf: the real routes plus views that fail on purpose (see test_errors.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tradingbot.errors import AppError
from tradingbot.site import urls as real_urls

# Error handlers are looked up on the root URLconf: keep the project's own.
handler400 = real_urls.handler400
handler403 = real_urls.handler403
handler404 = real_urls.handler404
handler500 = real_urls.handler500


class _OpenApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)


class BoomApi(_OpenApi):
    def get(self, request: Request) -> Response:
        raise RuntimeError("secret internals")


class ConflictApi(_OpenApi):
    def post(self, request: Request) -> Response:
        raise AppError(
            "conflict_x",
            "msg",
            409,
            details={"label": ["already taken"]},
            headers={"X-Conflict-With": "42"},
        )


class OrderInput(serializers.Serializer):
    symbol = serializers.CharField(max_length=10)
    quantity = serializers.IntegerField(min_value=1)

    def validate(self, attrs: dict) -> dict:
        if attrs["symbol"] == "DELISTED":
            raise serializers.ValidationError("This market is closed.")
        return attrs


class ValidateApi(_OpenApi):
    def post(self, request: Request) -> Response:
        serializer = OrderInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


def plain_boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret internals")


urlpatterns = [
    path("api/boom", BoomApi.as_view()),
    path("api/conflict", ConflictApi.as_view()),
    path("api/validate", ValidateApi.as_view()),
    path("boom/", plain_boom),
    path("", include("tradingbot.site.urls")),
]
