"""The notifications page: add (a bad URL refused next to its field, never echoed), list with
the masked URL and why a channel fails, send a test to a real local server, remove; another
user's channel is a 404."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import NotificationChannel
from accounts.notifications import channel_create

pytestmark = pytest.mark.django_db
PAGE = "/notifications/"


def test_the_page_adds_tests_and_removes_a_channel_never_showing_the_url(
    trader_client: Any, user: Any, webhook_server: Any
) -> None:
    secret = webhook_server.url("tok-abcdef123456")
    # a refused URL is shown next to its field, not echoed back
    refused = trader_client.post(PAGE, {"name": "phone", "url": "nonsense://tok-zzz999999"})
    assert refused.status_code == 400
    assert "Not a URL Apprise supports." in refused.content.decode()
    assert "tok-zzz999999" not in refused.content.decode()
    # added with two events
    added = trader_client.post(
        PAGE, {"name": "phone", "url": secret, "kinds": ["order_filled", "exit"]}, follow=True
    )
    html = added.content.decode()
    channel = NotificationChannel.objects.get()
    assert channel.kinds == ["order_filled", "exit"]
    assert "json://••••" in html
    assert "tok-abcdef123456" not in html
    assert 'href="/notifications/" aria-current="page">Notifications' in html
    # a test goes out through the outbox to the local server
    tested = trader_client.post(f"{PAGE}{channel.pk}/test", follow=True)
    assert "Test message sent to “phone”" in tested.content.decode()
    assert webhook_server.wait_for(1)[0].body["title"] == "Test message"
    # a failing endpoint: the page says why
    webhook_server.status = 500
    failed = trader_client.post(f"{PAGE}{channel.pk}/test", follow=True).content.decode()
    assert "failed" in failed
    assert "1 failure in a row" in failed
    assert "tok-abcdef123456" not in failed
    # removed
    trader_client.post(f"{PAGE}{channel.pk}/delete")
    assert not NotificationChannel.objects.exists()


def test_another_users_channel_is_a_404_on_the_page(trader_client: Any, other_user: Any) -> None:
    theirs = channel_create(user=other_user, name="theirs", url="json://127.0.0.1:9/x")
    assert trader_client.post(f"{PAGE}{theirs.pk}/delete").status_code == 404
    assert trader_client.post(f"{PAGE}{theirs.pk}/test").status_code == 404
    assert "theirs" not in trader_client.get(PAGE).content.decode()
    assert NotificationChannel.objects.filter(pk=theirs.pk).exists()
