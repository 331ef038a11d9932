"""Content-Security-Policy and Permissions-Policy on every response (tradingbot/security.py);
tests/browser/test_content_security_policy.py checks in Chromium that the pages obey it."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from tests.conftest import ROOT
from tradingbot.security import CHART_ATTRIBUTION_STYLE, PERMISSIONS_POLICY

CHARTS = ROOT / "static" / "vendor" / "lightweight-charts"


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


def assert_strict_policy(response, host: str = "testserver") -> None:
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", CHART_ATTRIBUTION_STYLE]
    assert policy["connect-src"] == ["'self'", f"ws://{host}"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    for sources in policy.values():
        assert "'unsafe-inline'" not in sources
        assert "'unsafe-eval'" not in sources
    permissions = dict(item.split("=") for item in response["Permissions-Policy"].split(", "))
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert permissions[feature] == "()"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/accounts/login/", "/dashboard/", "/bots/", "/api/docs/", "/admin/login/", "/nope/"],
)
def test_pages_carry_both_headers(client, user, path):
    client.force_login(user)
    response = client.get(path)
    assert response.status_code in (200, 302, 404)
    assert_strict_policy(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "status"), [("/api/auth/me", 401), ("/api/bots/abc", 404), ("/healthz", 200)]
)
def test_api_answers_carry_both_headers(api_client, path, status):
    response = api_client.get(path)
    assert response.status_code == status
    assert_strict_policy(response)


@pytest.mark.django_db
def test_the_policy_allows_the_secure_websocket_over_https(client):
    response = client.get("/accounts/login/", secure=True, HTTP_HOST="127.0.0.1")
    assert directives(response)["connect-src"] == ["'self'", "wss://127.0.0.1"]


def test_permissions_policy_denies_powerful_features():
    assert "camera=()" in PERMISSIONS_POLICY
    assert "microphone=()" in PERMISSIONS_POLICY


def test_the_one_allowed_inline_style_is_the_chart_librarys_attribution_style():
    # given: the <style> text the vendored Lightweight Charts inserts (a new version may change it)
    code = (CHARTS / "lightweight-charts.standalone.production.js").read_text()
    [style] = re.findall(r'createElement\("style"\),this\.\w+\.innerText="([^"]*)"', code)
    # then: the policy allows exactly that text
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    allowed = f"'sha256-{digest}'"
    assert allowed == CHART_ATTRIBUTION_STYLE


@pytest.mark.django_db
def test_a_request_for_another_host_is_refused_with_the_headers_and_no_websocket_source(client):
    response = client.get("/accounts/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert directives(response)["connect-src"] == ["'self'"]
    assert "Permissions-Policy" in response
