"""The site's 404 and 500 with DEBUG off (as `make run` runs): the JSON envelope under /api/, the
site's own pages elsewhere, never Django's list of URL patterns or its debug page."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from tradingbot.site import error_pages

boom_urls = pytest.mark.urls("tests.tradingbot.site.urls_error_pages")
NOT_FOUND = {
    "error": {"code": "not_found", "message": "There is nothing at this address.", "details": {}}
}
INTERNAL = {
    "error": {
        "code": "internal_error",
        "message": "An unexpected error occurred. It has been logged.",
        "details": {},
    }
}
# What Django's technical pages (DEBUG on) show and ours must not.
TECHNICAL = ("Using the URLconf", "api/bots/", "Traceback", "secret internals", "SECRET_KEY")


@pytest.fixture(autouse=True)
def _production(settings):
    settings.DEBUG = False


def assert_nothing_technical(html: str) -> None:
    for text in TECHNICAL:
        assert text not in html


@pytest.mark.django_db
@pytest.mark.parametrize("signed_in", [False, True])
def test_an_unknown_api_url_is_a_json_404_envelope(client, user, signed_in):
    # given
    if signed_in:
        client.force_login(user)
    # when
    response = client.get("/api/bots/abc")
    # then
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND


@pytest.mark.django_db
def test_an_unknown_page_is_the_sites_404_without_a_url_list(client, user):
    # given
    client.force_login(user)
    # when
    response = client.get("/no/such/page/")
    # then: the site's layout (navigation, the trader) and the 404 text
    html = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in html
    assert 'class="nav"' in html
    assert user.email in html
    assert_nothing_technical(html)


@boom_urls
@pytest.mark.django_db
def test_a_page_that_fails_is_the_plain_500_page(user):
    # given: a signed-in trader
    client = Client(raise_request_exception=False)
    client.force_login(user)
    # when
    response = client.get("/boom/")
    # then: the plain page, which knows nothing of the request (no navigation, no e-mail)
    html = response.content.decode()
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in html
    assert "/static/css/app.css" in html
    assert user.email not in html
    assert_nothing_technical(html)


def test_the_500_page_renders_without_the_database():
    # given: no database access allowed in this test (pytest-django blocks it), as when the
    # database is what failed
    request = RequestFactory().get("/anything/")
    # when
    response = error_pages.server_error(request)
    # then
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in response.content.decode()


@boom_urls
@pytest.mark.django_db
def test_an_api_url_that_fails_outside_drf_is_a_json_500_envelope():
    client = Client(raise_request_exception=False)
    response = client.get("/api/plain-boom")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == INTERNAL


def test_the_pages_stylesheet_is_served_with_debug_off(client):
    # whitenoise serves static files from the apps and static/ (WHITENOISE_USE_FINDERS), so the
    # pages keep their CSS and JS without a collectstatic step
    for path, kind in [
        ("/static/css/app.css", "text/css"),
        ("/static/js/page.js", "text/javascript"),
        ("/static/admin/css/base.css", "text/css"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response["Content-Type"].startswith(kind), path
