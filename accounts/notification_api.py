"""REST endpoints of notification channels: one view per operation, scoped to the owner (another
user's channel is a 404). The URL is write-only: answers show ``url_masked`` only."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import delivery, notifications
from accounts.authentication import request_owner
from accounts.models import NotificationChannel, User
from accounts.notification_kinds import KINDS
from tradingbot.api_utils import json_body, validated
from tradingbot.errors import AppError
from tradingbot.openapi import error_response

NOT_FOUND = error_response("not_found: no such channel, or another user's")
BAD_INPUT = error_response(
    "validation_error: a field is missing or invalid; invalid_url: Apprise cannot use the URL; "
    "unknown_kind: an event kind not in the list"
)


def channel_get(*, user: User, pk: int) -> NotificationChannel:
    channel = NotificationChannel.objects.filter(user=user, pk=pk).first()
    if channel is None:
        raise AppError("not_found", "No such notification channel.", 404)
    return channel


class ChannelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    url_masked = serializers.CharField(help_text="The scheme only: the URL is a secret")
    kinds = serializers.ListField(child=serializers.CharField())
    daily_summary_at = serializers.TimeField(
        allow_null=True, help_text="The daily summary's time in your time zone (HH:MM)"
    )
    status = serializers.ChoiceField(choices=NotificationChannel.Status.choices)
    failure_count = serializers.IntegerField(help_text="Failed deliveries in a row")
    last_error = serializers.CharField(help_text="Why the last delivery failed")
    last_sent_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


def _kinds_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, max_length=len(KINDS),
        help_text=f"Event kinds it gets (all by default): {', '.join(KINDS)}",
    )  # fmt: skip


class ChannelInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    url = serializers.CharField(max_length=2000, write_only=True, help_text="An Apprise URL")
    kinds = _kinds_field()
    daily_summary_at = serializers.TimeField(required=False, allow_null=True)


@extend_schema_serializer(component_name="NotificationChannelPatch")
class ChannelPatch(ChannelInput):
    name = serializers.CharField(max_length=100, required=False)
    url = serializers.CharField(max_length=2000, write_only=True, required=False)


class ChannelListCreateApi(APIView):
    @extend_schema(
        operation_id="notification_channels_list",
        responses={
            200: inline_serializer("NotificationChannelList", {"results": ChannelOutput(many=True)})
        },
    )
    def get(self, request: Request) -> Response:
        channels = NotificationChannel.objects.filter(user=request_owner(request))
        return Response({"results": ChannelOutput(channels, many=True).data})

    @extend_schema(
        request=ChannelInput,
        responses={201: ChannelOutput, 400: BAD_INPUT, 409: error_response("duplicate_name")},
    )
    def post(self, request: Request) -> Response:
        data = validated(ChannelInput, json_body(request))
        channel = notifications.channel_create(user=request_owner(request), **data)
        return Response(ChannelOutput(channel).data, status=status.HTTP_201_CREATED)


class ChannelDetailApi(APIView):
    @extend_schema(responses={200: ChannelOutput, 404: NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        return Response(ChannelOutput(channel_get(user=request_owner(request), pk=pk)).data)

    @extend_schema(
        request=ChannelPatch,
        responses={
            200: ChannelOutput, 400: BAD_INPUT, 404: NOT_FOUND,
            409: error_response("duplicate_name"),
        },
    )  # fmt: skip
    def patch(self, request: Request, pk: int) -> Response:
        channel = channel_get(user=request_owner(request), pk=pk)
        data = validated(ChannelPatch, json_body(request))
        channel = notifications.channel_update(channel=channel, **data)
        return Response(ChannelOutput(channel).data)

    @extend_schema(responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, pk: int) -> Response:
        channel = channel_get(user=request_owner(request), pk=pk)
        notifications.channel_delete(channel=channel)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelTestApi(APIView):
    """Send a test message now, through the outbox like any notification; the outcome."""

    @extend_schema_serializer(component_name="NotificationTestOutput")
    class Output(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=["sent", "pending", "failed"],
            help_text="sent; pending: it failed and will be retried (see error); failed",
        )
        error = serializers.CharField()
        channel = ChannelOutput()

    @extend_schema(request=None, responses={200: Output, 404: NOT_FOUND})
    def post(self, request: Request, pk: int) -> Response:
        channel = channel_get(user=request_owner(request), pk=pk)
        row = delivery.channel_send_test(channel=channel)
        channel.refresh_from_db()
        body = {"status": row.status, "error": row.last_error, "channel": channel}
        return Response(self.Output(body).data)
