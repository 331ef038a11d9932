"""The OpenAPI document and the Swagger UI page, served from local static files."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

SCHEMA = "/api/schema/"
DOCS = "/api/docs/"
EXPECTED_OPERATIONS = {
    "/api/auth/login": {"post"},
    "/api/auth/logout": {"post"},
    "/api/auth/me": {"get"},
    "/api/notification-channels": {"get", "post"},
    "/api/notification-channels/{id}": {"get", "patch", "delete"},
    "/api/notification-channels/{id}/test": {"post"},
    "/api/exchange-accounts": {"get", "post"},
    "/api/exchange-accounts/{id}": {"get", "delete"},
    "/api/exchange-accounts/{id}/balance": {"get"},
    "/api/candles": {"get"},
    "/api/bots": {"get", "post"},
    "/api/bots/{id}": {"get", "put", "patch", "delete"},
    "/api/bots/{id}/start": {"post"},
    "/api/bots/{id}/stop": {"post"},
    "/api/bots/{id}/close-position": {"post"},
    "/api/bots/{id}/chart": {"get"},
    "/api/bots/{id}/positions": {"get"},
    "/api/bots/{id}/signal-allow-list": {"put"},
    "/api/bots/{id}/signal-token": {"post", "delete"},
    "/api/bots/{id}/signals": {"get"},
    "/api/signals/{token}": {"post"},
    "/api/bots/{id}/orders": {"get"},
    "/api/bots/{id}/trades": {"get"},
    "/api/bots/{id}/events": {"get"},
    "/api/bots/{id}/equity": {"get"},
    "/api/performance": {"get"},
    "/api/strategies": {"get"},
    "/api/backtests": {"get", "post"},
    "/api/backtests/{id}": {"get", "delete"},
    "/api/backtests/{id}/trades": {"get"},
    "/api/backtests/{id}/equity": {"get"},
    "/api/backtests/{id}/export": {"get"},
    "/api/backtests/{id}/cancel": {"post"},
    "/api/backtests/{id}/rerun": {"post"},
    "/api/sweeps": {"get", "post"},
    "/api/sweeps/{id}": {"get", "delete"},
    "/api/sweeps/{id}/cancel": {"post"},
    "/api/optimizations": {"get", "post"},
    "/api/optimizations/{id}": {"get", "delete"},
    "/api/optimizations/{id}/cancel": {"post"},
    "/api/optimizations/{id}/trials": {"get"},
    "/api/walk-forwards": {"get", "post"},
    "/api/walk-forwards/{id}": {"get", "delete"},
    "/api/walk-forwards/{id}/cancel": {"post"},
    "/api/backtest-schedules": {"get", "post"},
    "/api/backtest-schedules/{id}": {"get", "patch", "delete"},
    "/api/backtest-schedules/{id}/run": {"post"},
}


def operations(document: dict) -> dict[str, set[str]]:
    methods = {"get", "post", "put", "patch", "delete"}
    return {path: set(item) & methods for path, item in document["paths"].items()}


@pytest.mark.django_db
def test_it_serves_the_openapi_document_to_anonymous_clients(api_client):
    # The schema is public (drf-spectacular's default SERVE_PERMISSIONS is AllowAny).
    # when
    response = api_client.get(SCHEMA, HTTP_ACCEPT="application/json")
    # then
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Trading bot platform API"
    assert operations(document) == EXPECTED_OPERATIONS


@pytest.mark.django_db
def test_it_serves_the_same_document_to_a_signed_in_client(auth_client):
    anonymous = APIClient().get(SCHEMA, HTTP_ACCEPT="application/json").json()
    signed_in = auth_client.get(SCHEMA, HTTP_ACCEPT="application/json").json()
    assert signed_in == anonymous


@pytest.mark.django_db
def test_it_serves_yaml_by_default(api_client):
    response = api_client.get(SCHEMA)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")
    assert b"/api/exchange-accounts/{id}:" in response.content


@pytest.mark.django_db
def test_it_declares_token_auth_and_an_open_login(api_client):
    document = api_client.get(SCHEMA, HTTP_ACCEPT="application/json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["tokenAuth"]["in"] == "header"
    assert schemes["tokenAuth"]["name"] == "Authorization"
    me = document["paths"]["/api/auth/me"]["get"]
    assert {"tokenAuth": []} in me["security"]
    login = document["paths"]["/api/auth/login"]["post"]
    assert not login.get("security") or login["security"] == [{}]


@pytest.mark.django_db
def test_it_serves_swagger_ui_from_local_static_files(client):
    # when
    response = client.get(DOCS)
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "cdn.jsdelivr" not in html
    assert "unpkg" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    # the page's own script comes from the docs URL (no inline script or style: the CSP)
    script = f"{DOCS}?script="
    assert all(asset.startswith("/static/") for asset in assets if asset != script), assets
    assert script in assets
    assert "<script>" not in html
    assert "<style>" not in html
    code = client.get(script)
    assert code.status_code == 200
    assert code["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in code.content.decode()


@pytest.mark.django_db
def test_it_really_serves_the_swagger_ui_assets(client):
    html = client.get(DOCS).content.decode()
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert b"".join(response.streaming_content), asset


@pytest.mark.django_db
def test_it_documents_the_404s_and_503s_the_exchange_account_endpoints_answer(api_client):
    paths = api_client.get(SCHEMA, HTTP_ACCEPT="application/json").json()["paths"]
    account = paths["/api/exchange-accounts/{id}"]
    balance = paths["/api/exchange-accounts/{id}/balance"]["get"]["responses"]
    assert "404" in account["get"]["responses"]
    assert {"404", "409"} <= set(account["delete"]["responses"])
    assert {"404", "503"} <= set(balance)
    assert "exchange_unavailable" in balance["503"]["description"]
    login = paths["/api/auth/login"]["post"]["responses"]
    assert "service_unavailable" in login["503"]["description"]
    assert "unsupported_media_type" in login["415"]["description"]


@pytest.mark.django_db
def test_it_documents_on_every_operation_the_errors_answered_before_its_view(api_client):
    document = api_client.get(SCHEMA, HTTP_ACCEPT="application/json").json()
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            expected = set()
            if any(operation.get("security", [])):
                expected |= {"401"}
            if "requestBody" in operation:
                expected |= {"400", "413", "415"}
            assert expected <= set(responses), (method, path)
            for status in {s for s in responses if s.startswith(("4", "5"))}:
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == envelope, (method, path, status)
