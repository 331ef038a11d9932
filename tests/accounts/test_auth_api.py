from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken

LOGIN = "/api/auth/login"
ME = "/api/auth/me"


def login(client, email, password, **extra):
    return client.post(LOGIN, {"email": email, "password": password}, format="json", **extra)


def login_token(client, user, password):
    """The token the login endpoint issues to ``user``."""
    return login(client, user.email, password).json()["token"]


def assert_me_refused(client, *, code):
    """``me`` answers 401 with the error ``code``."""
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


@pytest.mark.django_db
def test_it_returns_a_token_that_works_on_me(api_client, user, password):
    # when
    response = login(api_client, user.email, password)
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": user.pk, "email": user.email}
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    me = api_client.get(ME)
    assert me.status_code == 200
    assert me.json()["email"] == user.email


@pytest.mark.django_db
def test_it_stores_only_a_hash_of_the_token(api_client, user, password):
    token = login_token(api_client, user, password)
    stored = ApiToken.objects.get(user=user)
    assert stored.key_hash != token
    assert stored.key_hash == ApiToken.hash_key(token)


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["password", "email"])
def test_it_rejects_wrong_credentials_with_401_envelope(api_client, user, password, which):
    email = user.email if which == "password" else "nobody@example.com"
    wrong = "wrong password" if which == "password" else password
    response = login(api_client, email, wrong)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "invalid_credentials",
            "message": "Invalid email or password",
            "details": {},
        }
    }


@pytest.mark.django_db
def test_it_rejects_an_inactive_user_like_a_wrong_password(api_client, user, password):
    user.is_active = False
    user.save()
    response = login(api_client, user.email, password)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"email", "password"}),
        ({"email": "a@example.com"}, {"password"}),
        ({"email": "not-an-email", "password": "x"}, {"email"}),
        ({"email": 12, "password": "x"}, {"email"}),
        ({"email": ["a@example.com"], "password": "x"}, {"email"}),
        ({"email": "a@example.com", "password": None}, {"password"}),
        ({"email": "a@example.com", "password": "x" * 2000}, {"password"}),
    ],
)
def test_it_rejects_missing_or_malformed_fields_with_400_per_field(api_client, payload, fields):
    response = api_client.post(LOGIN, payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]) == fields


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ('{"email": "a@example.com", "password": ', "application/json", 400, "malformed_request"),
        ("[1, 2, 3]", "application/json", 400, "validation_error"),
        ('"just a string"', "application/json", 400, "validation_error"),
        ("email=a@example.com&password=x", "application/x-www-form-urlencoded", 415,
         "unsupported_media_type"),
        ("\xff\xfe", "application/json", 400, "malformed_request"),
    ],
)  # fmt: skip
def test_it_answers_bad_bodies_with_a_clear_envelope(api_client, body, content_type, status, code):
    response = api_client.generic("POST", LOGIN, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


@pytest.mark.django_db
def test_it_refuses_an_oversized_body_with_413(api_client):
    body = '{"email": "a@example.com", "password": "' + "x" * (2 * 1024 * 1024) + '"}'
    response = api_client.generic("POST", LOGIN, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


@pytest.mark.django_db
def test_it_throttles_the_sixth_quick_failure_with_429_and_retry_after(api_client, user):
    for _ in range(5):
        assert login(api_client, user.email, "wrong").status_code == 401
    response = login(api_client, user.email, "wrong")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_attempts"
    assert 1 <= int(response["Retry-After"]) <= 60


@pytest.mark.django_db
def test_it_refuses_even_the_right_password_while_throttled(api_client, user, password):
    for _ in range(5):
        login(api_client, user.email, "wrong")
    assert login(api_client, user.email, password).status_code == 429


@pytest.mark.django_db
def test_it_throttles_per_ip_across_emails(api_client, user, password):
    for n in range(5):
        login(api_client, f"nobody{n}@example.com", "wrong", REMOTE_ADDR="10.9.8.7")
    # given: a fresh email from the same address
    blocked = login(api_client, user.email, password, REMOTE_ADDR="10.9.8.7")
    allowed = login(api_client, user.email, password, REMOTE_ADDR="10.9.8.8")
    assert blocked.status_code == 429
    assert allowed.status_code == 200


@pytest.mark.django_db
def test_it_forgives_an_emails_failures_after_a_success(api_client, user, password):
    for n in range(4):
        login(api_client, user.email, "wrong", REMOTE_ADDR=f"10.0.0.{n}")
    assert login(api_client, user.email, password, REMOTE_ADDR="10.0.1.1").status_code == 200
    for n in range(4):
        assert login(api_client, user.email, "wrong", REMOTE_ADDR=f"10.0.2.{n}").status_code == 401


@pytest.mark.django_db
def test_it_rejects_an_expired_token(api_client, user, password):
    token = login_token(api_client, user, password)
    ApiToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert_me_refused(api_client, code="authentication_failed")


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Token", "Token a b", "Token not-a-real-token", "Bearer nope"])
def test_it_rejects_bad_authorization_headers_with_401(api_client, header):
    api_client.credentials(HTTP_AUTHORIZATION=header)
    assert_me_refused(api_client, code="authentication_failed")


@pytest.mark.django_db
def test_it_accepts_a_bearer_token(api_client, user, password):
    token = login_token(api_client, user, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get(ME).status_code == 200


@pytest.mark.django_db
def test_me_without_credentials_is_401(api_client):
    assert_me_refused(api_client, code="not_authenticated")


@pytest.mark.django_db
def test_logout_revokes_the_token(api_client, user, password):
    token = login_token(api_client, user, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.post("/api/auth/logout").status_code == 204
    assert api_client.get(ME).status_code == 401
    assert not ApiToken.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_me_works_with_a_session_and_logout_ends_it(client, user):
    client.force_login(user)
    assert client.get(ME).json()["email"] == user.email
    assert client.post("/api/auth/logout").status_code == 204
    assert client.get(ME).status_code in (401, 403)


@pytest.mark.django_db
def test_session_api_writes_require_csrf(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(
        "/api/exchange-accounts",
        {"exchange": "bitget", "label": "x", "mode": "paper"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "CSRF" in response.json()["error"]["message"]
