"""/api/notification-channels: owner-scoped, the URL never shown again, bad input a 400 envelope,
and the test endpoint delivering to a real local HTTP server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from accounts.models import NotificationChannel, NotificationOutbox
from accounts.notifications import channel_create

pytestmark = pytest.mark.django_db
URL = "/api/notification-channels"


def test_it_creates_lists_and_never_shows_the_url_again(auth_client: Any, webhook_server: Any):
    # when a channel is created
    secret = webhook_server.url("tok-abcdef123456")
    created = auth_client.post(URL, {"name": "phone", "url": secret}, format="json")
    # then it gets every kind but the staff's, and the URL is masked everywhere
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["url_masked"] == "json://••••"
    assert "system_alert" not in body["kinds"]
    assert "order_filled" in body["kinds"]
    listed = auth_client.get(URL)
    detail = auth_client.get(f"{URL}/{body['id']}")
    for answer in (created, listed, detail):
        assert "tok-abcdef123456" not in answer.content.decode()
    assert listed.json()["results"][0]["name"] == "phone"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"name": "x", "url": "nonsense://foo"}, "invalid_url"),
        ({"name": "x", "url": "not a url"}, "invalid_url"),
        ({"name": "x", "url": "json://127.0.0.1/x", "kinds": ["moon"]}, "unknown_kind"),
        ({"name": "x", "url": "json://127.0.0.1/x", "kinds": ["system_alert"]}, "unknown_kind"),
        ({"name": "x", "url": "json://127.0.0.1/x", "kinds": "order_filled"}, "validation_error"),
        ({"url": "json://127.0.0.1/x"}, "validation_error"),
    ],
)
def test_bad_input_is_a_400_envelope_and_saves_nothing(auth_client: Any, payload: Any, code: str):
    answer = auth_client.post(URL, payload, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code
    assert "nonsense://foo" not in answer.content.decode()
    assert not NotificationChannel.objects.exists()


def test_malformed_json_is_a_400_envelope(auth_client: Any):
    answer = auth_client.post(URL, "{not json", content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "malformed_request"


def test_another_users_channel_is_a_404(auth_client: Any, other_user: Any):
    theirs = channel_create(user=other_user, name="theirs", url="json://127.0.0.1/x")
    for answer in (
        auth_client.get(f"{URL}/{theirs.pk}"),
        auth_client.patch(f"{URL}/{theirs.pk}", {"name": "mine"}, format="json"),
        auth_client.delete(f"{URL}/{theirs.pk}"),
        auth_client.post(f"{URL}/{theirs.pk}/test"),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"
    assert auth_client.get(URL).json()["results"] == []
    assert NotificationChannel.objects.get(pk=theirs.pk).name == "theirs"


def test_patch_changes_kinds_and_time_and_delete_removes(auth_client: Any, user: Any):
    channel = channel_create(user=user, name="phone", url="json://127.0.0.1/x")
    answer = auth_client.patch(
        f"{URL}/{channel.pk}", {"kinds": ["trade_closed"], "daily_summary_at": "21:30"},
        format="json",
    )  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert (answer.json()["kinds"], answer.json()["daily_summary_at"]) == (
        ["trade_closed"],
        "21:30:00",
    )
    assert auth_client.delete(f"{URL}/{channel.pk}").status_code == 204
    assert not NotificationChannel.objects.exists()


def test_the_test_endpoint_delivers_within_ten_seconds(
    auth_client: Any, user: Any, webhook_server: Any
):
    # given a json:// channel on a local server
    channel = channel_create(user=user, name="phone", url=webhook_server.url("hook"))
    started = time.time()
    # when its test is asked
    answer = auth_client.post(f"{URL}/{channel.pk}/test")
    # then the local server got the message, within 10 s, through the outbox
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "sent"
    [message] = webhook_server.wait_for(1, timeout=10)
    assert message.at - started < 10
    assert message.body["title"] == "Test message"
    assert "phone" in message.body["message"]
    assert NotificationOutbox.objects.get().status == "sent"


def test_the_test_endpoint_says_why_a_channel_fails(auth_client: Any, user: Any, webhook_server):
    webhook_server.status = 500
    channel = channel_create(user=user, name="phone", url=webhook_server.url("tok-abcdef123456"))
    answer = auth_client.post(f"{URL}/{channel.pk}/test").json()
    assert answer["status"] == "pending"
    assert "500" in answer["error"]
    assert answer["channel"]["failure_count"] == 1
    assert "tok-abcdef123456" not in str(answer)
