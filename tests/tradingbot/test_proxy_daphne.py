"""Trusted proxies on a real daphne, started as the Procfile starts it (test_proxy.py has the rule
and the ASGI-level tests): a client cannot pick its address with X-Forwarded-For; a trusted
proxy can, and the throttle and the log then use the address it forwarded."""

from __future__ import annotations

import json
import shlex
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, server_env
from tests.tradingbot.live_server_helpers import daphne_serving

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]

LOGIN = "/api/auth/login"


def failed_logins(url: str, forwarded_for: list[str]) -> list[int]:
    """One wrong login per ``forwarded_for`` entry, each for another e-mail: the statuses."""
    statuses = []
    for n, address in enumerate(forwarded_for):
        body = json.dumps({"email": f"nobody{n}@example.com", "password": "wrong"}).encode()
        request = urllib.request.Request(  # noqa: S310 - our own test server
            url + LOGIN,
            data=body,
            headers={"Content-Type": "application/json", "X-Forwarded-For": address},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    return statuses


def test_the_procfile_starts_daphne_without_proxy_headers():
    # daphne's --proxy-headers would believe X-Forwarded-For from anyone, before our middleware
    web = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    assert "--proxy-headers" not in shlex.split(web.removeprefix("web:"))


def test_eight_failed_logins_with_a_new_forwarded_for_each_reach_429(settings, tmp_path):
    # given: daphne as in production, no trusted proxy (the default)
    allowed = settings.LOGIN_MAX_FAILURES
    with daphne_serving(env=server_env(), log_path=tmp_path / "daphne.log") as server:
        # when: eight wrong logins, eight e-mails, a new X-Forwarded-For each time
        statuses = failed_logins(server.url, [f"198.51.100.{n}" for n in range(8)])
        log = server.log()
    # then: the peer's own address is throttled, and it is what the log names
    assert statuses == [401] * allowed + [429] * (8 - allowed)
    assert log.count("auth.login_failed ip=127.0.0.1") == allowed
    assert "198.51.100." not in log


def test_a_trusted_proxy_names_the_client(settings, tmp_path):
    # given: the test client is the trusted proxy
    env = server_env(TRUSTED_PROXIES="127.0.0.1")
    with daphne_serving(env=env, log_path=tmp_path / "daphne.log") as server:
        # when: eight clients behind it fail once each, one with a forged entry of its own
        forwarded = [f"198.51.100.{n}" for n in range(7)] + ["6.6.6.6, 192.0.2.8"]
        statuses = failed_logins(server.url, forwarded)
        log = server.log()
    # then: one failure per forwarded address, none throttled; logged as forwarded
    assert statuses == [401] * 8
    for n in range(7):
        assert f"auth.login_failed ip=198.51.100.{n}" in log
    assert "auth.login_failed ip=192.0.2.8" in log
    assert "6.6.6.6" not in log
    assert "ip=127.0.0.1" not in log
