"""Trusted proxies: only a peer in TRUSTED_PROXIES may name the client (X-Forwarded-For) and the
scheme (X-Forwarded-Proto); anyone else's headers change nothing (tradingbot/proxy.py).

The login tests go through the whole ASGI application (``tradingbot.asgi.application``) with the
TCP peer set in the scope, as daphne sets it; test_proxy_daphne.py repeats them on a real daphne.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from tradingbot.asgi import application
from tradingbot.proxy import TrustedProxyMiddleware, forwarded_client

LOGIN = "/api/auth/login"
CLIENT = ("203.0.113.9", 51234)  # the TCP peer: a client straight on the internet
PROXY = ("10.0.0.5", 40000)  # the TCP peer: our own reverse proxy


# --- the rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        # nobody is trusted: the peer, whatever the header says
        ("203.0.113.9", ["198.51.100.1"], (), "203.0.113.9"),
        # a peer that is not a trusted proxy cannot name another client
        ("203.0.113.9", ["198.51.100.1"], ("10.0.0.0/8",), "203.0.113.9"),
        # the proxy's word is believed
        ("10.0.0.5", ["198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
        # what the client wrote itself (left of the proxy's entry) is not
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6", "198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
        # two trusted hops: the right-most address that is no proxy of ours
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1, 10.0.0.9"], ("10.0.0.0/8",), "198.51.100.1"),
        # with ports, IPv6 and IPv4-mapped addresses as proxies write them
        ("10.0.0.5", ["198.51.100.1:4711"], ("10.0.0.5",), "198.51.100.1"),
        ("10.0.0.5", ["[2001:db8::7]:443"], ("10.0.0.5",), "2001:db8::7"),
        ("::ffff:10.0.0.5", ["2001:db8::7"], ("10.0.0.5",), "2001:db8::7"),
        # a garbled hop: nothing left of it is believed; the last proxy passed is the client
        ("10.0.0.5", ["198.51.100.1, not-an-ip"], ("10.0.0.0/8",), "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.1, not-an-ip, 10.0.0.9"], ("10.0.0.0/8",), "10.0.0.9"),
        # a trusted proxy without the header: itself
        ("10.0.0.5", [], ("10.0.0.0/8",), "10.0.0.5"),
    ],
)
def test_it_believes_forwarded_for_only_from_trusted_proxies(
    peer, forwarded_for, trusted, expected
):
    assert forwarded_client(peer, forwarded_for, trusted) == expected


# --- the middleware on its own --------------------------------------------------------------------


def seen_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """The scope the wrapped application receives."""
    seen: dict[str, Any] = {}

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    async_to_sync(TrustedProxyMiddleware(inner))(scope, None, None)
    return seen


def forwarded_scope(kind: str, peer: tuple[str, int], **headers: str) -> dict[str, Any]:
    encoded = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    scheme = "http" if kind == "http" else "ws"
    return {"type": kind, "scheme": scheme, "client": peer, "headers": encoded, "path": "/"}


@pytest.mark.parametrize(("kind", "secure"), [("http", "https"), ("websocket", "wss")])
def test_it_takes_client_and_scheme_from_a_trusted_proxy(settings, kind, secure):
    # given
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    scope = forwarded_scope(
        kind, PROXY, x_forwarded_for="6.6.6.6, 198.51.100.1", x_forwarded_proto="https"
    )
    # when
    seen = seen_scope(scope)
    # then
    assert seen["client"] == ("198.51.100.1", 0)
    assert seen["scheme"] == secure


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_it_ignores_forwarded_headers_from_anyone_else(settings, kind):
    # given: a client that forges both headers
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    scope = forwarded_scope(kind, CLIENT, x_forwarded_for="10.0.0.1", x_forwarded_proto="https")
    # when
    seen = seen_scope(scope)
    # then
    assert seen["client"] == CLIENT
    assert seen["scheme"] == scope["scheme"]


def test_it_trusts_nobody_by_default(settings):
    assert settings.TRUSTED_PROXIES == []
    scope = forwarded_scope("http", ("127.0.0.1", 5000), x_forwarded_for="198.51.100.1")
    assert seen_scope(scope)["client"] == ("127.0.0.1", 5000)


# --- logins through the whole application ---------------------------------------------------------


@pytest.fixture
def asgi_db(db: Any) -> Any:
    """As Django's test client does: requests must not close the test's connection (it is in
    the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


async def _asgi_post(path: str, data: dict[str, Any], peer: tuple[str, int], **headers: str) -> int:
    body = json.dumps(data).encode()
    scope = forwarded_scope(
        "http", peer, host="127.0.0.1", content_type="application/json",
        content_length=str(len(body)), **headers,
    )  # fmt: skip
    scope.update(
        asgi={"version": "3.0"}, http_version="1.1", method="POST", path=path,
        raw_path=path.encode(), query_string=b"", root_path="", server=("127.0.0.1", 8000),
    )  # fmt: skip
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(timeout=30)
    while (await communicator.receive_output(timeout=30)).get("more_body"):
        pass
    return int(start["status"])


def failed_logins(peer: tuple[str, int], forwarded_for: list[str]) -> list[int]:
    """The statuses of one wrong login per ``forwarded_for`` entry, each for another e-mail."""
    return [
        async_to_sync(_asgi_post)(
            LOGIN,
            {"email": f"nobody{n}@example.com", "password": "wrong"},
            peer,
            x_forwarded_for=address,
        )
        for n, address in enumerate(forwarded_for)
    ]


def test_a_client_cannot_dodge_the_login_throttle_with_forged_forwarded_for(settings, asgi_db):
    # given: no trusted proxy (the default), LOGIN_MAX_FAILURES failures allowed per address
    allowed = settings.LOGIN_MAX_FAILURES
    # when: eight wrong logins from one client, eight e-mails, a new X-Forwarded-For each time
    statuses = failed_logins(CLIENT, [f"198.51.100.{n}" for n in range(8)])
    # then: the client's own address is throttled
    assert statuses == [401] * allowed + [429] * (8 - allowed)


def test_a_trusted_proxy_names_the_client_for_the_throttle_and_the_logs(settings, asgi_db, caplog):
    # given
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    # when: eight clients behind the proxy fail once each (one forges a header of its own)
    with caplog.at_level(logging.INFO):
        statuses = failed_logins(
            PROXY, [f"198.51.100.{n}" for n in range(7)] + ["1.2.3.4, 192.0.2.8"]
        )
    # then: eight addresses with one failure each, logged as the proxy forwarded them
    assert statuses == [401] * 8
    failures = [r.ip for r in caplog.records if r.getMessage() == "auth.login_failed"]
    assert failures == [f"198.51.100.{n}" for n in range(7)] + ["192.0.2.8"]
    access = [r.ip for r in caplog.records if r.name == "tradingbot.access"]
    assert access == failures
    # and when: one of them goes on failing, it alone is throttled
    again = failed_logins(PROXY, ["192.0.2.8"] * settings.LOGIN_MAX_FAILURES)
    assert again[-1] == 429
    assert failed_logins(PROXY, ["198.51.100.1"]) == [401]
