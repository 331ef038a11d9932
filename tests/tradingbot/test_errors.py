"""Errors: one JSON envelope for the API, the site layout for pages, nothing internal leaks."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

BRAND = "◆ Tradingbot"
STYLESHEET = "/static/css/app.css"
boom_urls = pytest.mark.urls("tests.tradingbot.urls_boom")


def error_records(caplog):
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- API (DRF) --------------------------------------------------------------------------------


def assert_error_envelope(response, status: int, code: str, message: str) -> None:
    """A JSON answer of ``status`` that is the error envelope alone, without details."""
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"code": code, "message": message, "details": {}}}


@boom_urls
def test_it_hides_an_unexpected_api_exception_behind_an_internal_error_envelope(api_client, caplog):
    # when
    with caplog.at_level(logging.INFO):
        response = api_client.get("/api/boom")
    # then: the client learns nothing about the failure
    assert_error_envelope(
        response, 500, "internal_error", "An unexpected error occurred. It has been logged."
    )
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content


@boom_urls
def test_it_logs_an_unexpected_api_exception_exactly_once_with_its_traceback(api_client, caplog):
    # when
    with caplog.at_level(logging.INFO):
        api_client.get("/api/boom")
    # then
    [record] = error_records(caplog)
    assert record.name == "tradingbot.errors"
    assert record.getMessage() == "api.internal_error"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert str(record.exc_info[1]) == "secret internals"
    assert (record.path, record.method, record.view) == ("/api/boom", "GET", "BoomApi")
    assert [r for r in caplog.records if r.name == "django.request"] == []


@boom_urls
def test_it_returns_an_app_error_as_its_envelope_status_and_headers(api_client, caplog):
    # when
    with caplog.at_level(logging.INFO):
        response = api_client.post("/api/conflict", {}, format="json")
    # then
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "conflict_x", "message": "msg", "details": {"label": ["already taken"]}}
    }
    assert response["X-Conflict-With"] == "42"
    assert error_records(caplog) == []


@boom_urls
def test_it_reports_validation_errors_per_field(api_client):
    # when
    response = api_client.post("/api/validate", {"quantity": 0}, format="json")
    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "The request has invalid fields."
    assert error["details"] == {
        "symbol": ["This field is required."],
        "quantity": ["Ensure this value is greater than or equal to 1."],
    }


@boom_urls
def test_it_reports_an_object_level_validation_error_as_non_field_errors(api_client):
    response = api_client.post(
        "/api/validate", {"symbol": "DELISTED", "quantity": 1}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"non_field_errors": ["This market is closed."]}


@boom_urls
def test_it_reports_malformed_json_as_malformed_request(api_client):
    response = api_client.post("/api/validate", "{not json", content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_request"
    assert error["details"] == {}


@boom_urls
def test_it_passes_a_valid_request_through(api_client):
    response = api_client.post("/api/validate", {"symbol": "BTC", "quantity": 2}, format="json")
    assert response.status_code == 200
    assert response.json() == {"symbol": "BTC", "quantity": 2}


def test_it_answers_an_unknown_api_url_with_a_json_404_envelope(client):
    response = client.get("/api/nope")
    assert_error_envelope(response, 404, "not_found", "There is nothing at this address.")


def test_it_answers_a_wrong_method_with_a_method_not_allowed_envelope(api_client):
    # when
    response = api_client.get("/api/auth/login")
    # then
    assert response.status_code == 405
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert "GET" in error["message"]
    assert "POST" in response["Allow"]


# --- HTML pages -------------------------------------------------------------------------------


def assert_error_page(response, status: int, title: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert BRAND in html
    assert STYLESHEET in html
    assert f"<h1>{title}</h1>" in html
    assert f"<title>{title} · Tradingbot</title>" in html
    return html


def test_it_answers_an_unknown_page_with_the_site_layout(client):
    response = client.get("/nope")
    assert_error_page(response, 404, "Not found")


@pytest.mark.django_db
def test_it_shows_the_navigation_on_a_404_page_for_a_signed_in_trader(client, user):
    # given
    client.force_login(user)
    # when
    html = assert_error_page(client.get("/nope"), 404, "Not found")
    # then
    assert 'class="nav"' in html
    assert 'href="/exchange-accounts/"' in html
    assert user.email in html


@boom_urls
def test_it_renders_an_unexpected_page_exception_as_the_500_page(settings, caplog):
    # given
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    # when
    with caplog.at_level(logging.INFO):
        response = client.get("/boom/")
    # then
    html = assert_error_page(response, 500, "Something went wrong")
    assert "secret internals" not in html
    assert "Traceback" not in html
    [record] = error_records(caplog)
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "secret internals"


@pytest.mark.django_db
def test_it_answers_a_csrf_failure_on_the_login_form_with_the_site_layout(user, password):
    # given: a browser that posts without the form's token
    client = Client(enforce_csrf_checks=True)
    # when
    response = client.post("/accounts/login/", {"email": user.email, "password": password})
    # then
    html = assert_error_page(response, 403, "Form expired")
    assert "Reload the page and try again." in html
    assert "_auth_user_id" not in client.session


# --- text no codec can write -------------------------------------------------------------------


def test_it_escapes_text_utf8_cannot_encode_in_every_error_message():
    # given: DRF's refusal of a choice repeats the value sent, here a lone surrogate, in a
    # message and as a key (an unknown parameter)
    from rest_framework.exceptions import ValidationError
    from rest_framework.renderers import JSONRenderer

    from tradingbot.errors import api_exception_handler

    error = ValidationError({"exchange": ['"\ud800" is not a valid choice.'], "\ud800": ["?"]})
    # when
    response = api_exception_handler(error, {})
    content = JSONRenderer().render(response.data)  # it raised UnicodeEncodeError: a 500
    # then
    assert json.loads(content)["error"]["details"] == {
        "exchange": ['"\\ud800" is not a valid choice.'],
        "\\ud800": ["?"],
    }


def test_it_escapes_text_utf8_cannot_encode_in_an_app_errors_message():
    from tradingbot.errors import AppError, api_exception_handler

    response = api_exception_handler(AppError("unknown_symbol", "no market \ud800"), {})
    assert response.data["error"]["message"] == "no market \\ud800"
