"""Real delivery paths of Apprise's services, nothing leaving the machine: e-mail to a real local
SMTP server (aiosmtpd); Telegram and Discord answered at the HTTP layer Apprise uses (requests'
transport adapter) with recorded responses of their APIs, through Apprise's real code."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from requests.adapters import HTTPAdapter

from accounts import delivery
from accounts.models import NotificationChannel
from accounts.notifications import channel_create, notify

pytestmark = pytest.mark.django_db

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TG_CHAT = "12315544"
TG_SENT = {  # Telegram Bot API, sendMessage, as it answers
    "ok": True,
    "result": {
        "message_id": 42, "date": 1796656823, "text": "…",
        "from": {"id": 123456789, "is_bot": True, "first_name": "Tradingbot"},
        "chat": {"id": 12315544, "first_name": "Ann", "type": "private"},
    },
}  # fmt: skip
TG_UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}
DISCORD_ID, DISCORD_TOKEN = "1148000000000000001", "Xk3dVhRq0LmWbUeZ7yT9pN2cA5sG8fJ1oI4hK6"
DISCORD_UNKNOWN = {"message": "Unknown Webhook", "code": 10015}


@dataclass
class RecordedHttp:
    """Answers for ``(method, url prefix)``; every request made; anything else refused."""

    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[requests.PreparedRequest] = field(default_factory=list)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.requests.append(request)
        for (method, prefix), (status, body) in self.answers.items():
            if request.method == method and str(request.url).startswith(prefix):
                return self._response(request, status, body)
        raise requests.ConnectionError(f"no recorded answer for {request.method} {request.url}")

    @staticmethod
    def _response(request: Any, status: int, body: Any) -> requests.Response:
        response = requests.Response()
        response.status_code, response.request, response.url = status, request, request.url
        response._content = b"" if body is None else json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        return response


@pytest.fixture
def recorded_http(monkeypatch: Any) -> RecordedHttp:
    recorded = RecordedHttp()
    monkeypatch.setattr(HTTPAdapter, "send", lambda self, request, **kw: recorded.send(request))
    return recorded


def told(user: Any, key: str = "trade-1") -> None:
    facts = {"bot": "Grid", "symbol": "BTC/USDT", "side": "sell", "qty": "0.1", "price": "51000",
             "pnl": "+100.00"}  # fmt: skip
    notify(user=user, kind="trade_closed", key=key, facts=facts)


def test_telegram_gets_the_message_and_a_rejected_token_is_the_channels_error(
    user: Any, recorded_http: RecordedHttp
) -> None:
    # given a Telegram channel and the Bot API's recorded answer
    api = f"https://api.telegram.org/bot{TG_TOKEN}/sendMessage"
    recorded_http.answers[("POST", api)] = (200, TG_SENT)
    channel = channel_create(user=user, name="tg", url=f"tgram://{TG_TOKEN}/{TG_CHAT}/")
    told(user)
    # when it is delivered: one sendMessage to the chat, with the title and the PnL
    assert delivery.channel_deliver(channel_id=channel.pk) == "sent"
    [sent] = recorded_http.requests
    payload = json.loads(sent.body or b"{}")
    assert str(payload["chat_id"]) == TG_CHAT
    assert "Grid: trade closed +100.00" in payload["text"]
    # when Telegram rejects the token, the channel says so, without the token
    recorded_http.answers[("POST", api)] = (401, TG_UNAUTHORIZED)
    told(user, key="trade-2")
    NotificationChannel.objects.filter(pk=channel.pk).update(last_sent_at=None)
    assert delivery.channel_deliver(channel_id=channel.pk) == "failed"
    channel.refresh_from_db()
    assert "Unauthorized" in channel.last_error
    assert TG_TOKEN.split(":")[1] not in channel.last_error


def test_discord_gets_the_message_and_an_unknown_webhook_is_the_channels_error(
    user: Any, recorded_http: RecordedHttp
) -> None:
    hook = f"https://discord.com/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}"
    recorded_http.answers[("POST", hook)] = (204, None)
    channel = channel_create(user=user, name="dc", url=f"discord://{DISCORD_ID}/{DISCORD_TOKEN}")
    told(user)
    assert delivery.channel_deliver(channel_id=channel.pk) == "sent"
    payload = json.loads(recorded_http.requests[0].body or b"{}")
    assert "Grid: trade closed +100.00" in json.dumps(payload)
    recorded_http.answers[("POST", hook)] = (404, DISCORD_UNKNOWN)
    told(user, key="trade-2")
    NotificationChannel.objects.filter(pk=channel.pk).update(last_sent_at=None)
    assert delivery.channel_deliver(channel_id=channel.pk) == "failed"
    channel.refresh_from_db()
    assert "404" in channel.last_error
    assert DISCORD_TOKEN not in channel.last_error


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    """A real SMTP server (aiosmtpd) on a free local port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


def test_an_email_channel_sends_to_a_real_smtp_server(user: Any, smtp_server: Any) -> None:
    port, inbox = smtp_server
    url = f"mailto://127.0.0.1:{port}?from=bot@example.com&to=trader@example.com&mode=insecure"
    channel = channel_create(user=user, name="mail", url=url)
    told(user)
    assert delivery.channel_deliver(channel_id=channel.pk) == "sent"
    [message] = inbox.messages
    assert message["Subject"] == "Grid: trade closed +100.00"
    assert message["To"] == "trader@example.com"
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    assert "BTC/USDT sold 0.1 @ 51000, PnL +100.00" in text.get_payload(decode=True).decode()
