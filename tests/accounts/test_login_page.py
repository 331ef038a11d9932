from __future__ import annotations

import pytest
from django.test import Client

LOGIN = "/accounts/login/"


@pytest.mark.django_db
def test_it_logs_in_and_lands_on_the_dashboard(client, user, password):
    response = client.post(LOGIN, {"email": user.email, "password": password})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


@pytest.mark.django_db
def test_it_shows_the_error_on_a_wrong_password(client, user):
    response = client.post(LOGIN, {"email": user.email, "password": "nope"})
    assert response.status_code == 200
    assert "Invalid email or password" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_it_throttles_the_page_with_429_and_a_message(client, user, password):
    for _ in range(5):
        client.post(LOGIN, {"email": user.email, "password": "nope"})
    response = client.post(LOGIN, {"email": user.email, "password": password})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_page_and_the_api_share_one_throttle(client, api_client, user):
    for _ in range(5):
        api_client.post("/api/auth/login", {"email": user.email, "password": "x"}, format="json")
    response = client.post(LOGIN, {"email": user.email, "password": "x"})
    assert response.status_code == 429


@pytest.mark.django_db
def test_it_requires_a_csrf_token(user, password):
    client = Client(enforce_csrf_checks=True)
    response = client.post(LOGIN, {"email": user.email, "password": password})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_it_ignores_an_offsite_next(client, user, password):
    response = client.post(
        LOGIN + "?next=https://evil.example.com/", {"email": user.email, "password": password}
    )
    assert response["Location"] == "/dashboard/"


@pytest.mark.django_db
def test_it_follows_a_local_next(client, user, password):
    response = client.post(
        LOGIN, {"email": user.email, "password": password, "next": "/exchange-accounts/"}
    )
    assert response["Location"] == "/exchange-accounts/"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data", [{}, {"email": "not-an-email", "password": "x"}, {"email": "a@example.com"}]
)
def test_it_rerenders_malformed_forms_without_error(client, data):
    response = client.post(LOGIN, data)
    assert response.status_code == 200
    assert "<form" in response.content.decode()


@pytest.mark.django_db
def test_logout_asks_on_get_and_ends_the_session_on_post(client, user):
    client.force_login(user)
    confirm = client.get("/accounts/logout/")
    assert confirm.status_code == 200
    assert 'action="/accounts/logout/"' in confirm.content.decode()
    assert client.get("/dashboard/").status_code == 200
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 302


@pytest.mark.django_db
def test_the_dashboard_lists_the_users_exchange_accounts_only(
    client, user, other_user, exchange_account_factory
):
    exchange_account_factory(user=user, label="My paper account")
    exchange_account_factory(user=other_user, label="Someone else's")
    client.force_login(user)
    page = client.get("/dashboard/").content.decode()
    assert "My paper account" in page
    assert "Someone else" not in page


@pytest.mark.django_db
def test_email_login_is_case_insensitive(client, user, password):
    response = client.post(LOGIN, {"email": user.email.upper(), "password": password})
    assert response.status_code == 302
