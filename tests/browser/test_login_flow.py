"""Logging in and out in a real Chromium against the daphne server."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

LOGIN = "/accounts/login/"


def test_it_renders_the_login_page_inside_the_site_layout(page):
    # given an anonymous visitor; when they open the site root
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto("/")

    # then they land on the login page, drawn in the site's layout with its stylesheet
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page).to_have_title("Log in · Tradingbot")
    expect(page.locator("header.topbar a.brand")).to_have_text("◆ Tradingbot")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_label("Email")).to_be_focused()
    expect(page.get_by_label("Password")).to_have_attribute("type", "password")
    stylesheet = [r for r in responses if r.url.endswith("/static/css/app.css")]
    assert [r.status for r in stylesheet] in ([200], [304])
    assert page.evaluate("document.styleSheets[0].cssRules.length") > 0
    # and nothing of the signed-in navigation shows
    expect(page.locator("nav.nav")).to_have_count(0)
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)


def test_it_shows_an_error_and_stays_on_the_login_page_on_a_wrong_password(page, trader):
    # when the trader types a wrong password
    log_in(page, trader.email, "not the password")

    # then the page says so, keeps the email, forgets the password and logs nobody in
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("alert")).to_have_text("Invalid email or password")
    expect(page.get_by_label("Email")).to_have_value(trader.email)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    page.goto("/dashboard/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/dashboard/$"))


def test_it_lands_on_the_dashboard_listing_masked_exchange_accounts(
    page, trader_factory, password, account_factory
):
    # given a trader who has a live
    # account with credentials and a paper account
    trader = trader_factory(email="demo@example.com")
    account_factory(
        user=trader,
        label="Bitget main",
        mode="live",
        api_key="ABCD-key-1234",
        api_secret="SECRET-value-5678",
        passphrase="PASS-phrase-9012",
    )
    account_factory(user=trader, label="Paper (Bitget rules)", mode="paper")

    # when they log in with the right password
    log_in(page, trader.email, password)

    # then they are on their dashboard, which lists both accounts with the key masked
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page).to_have_title("Dashboard · Tradingbot")
    expect(page.locator("header .who")).to_have_text(trader.email)
    expect(page.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")
    rows = page.locator("#exchange-accounts tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Bitget main")
    expect(rows.nth(0)).to_contain_text("Live")
    expect(rows.nth(0)).to_contain_text("••••1234")
    expect(rows.nth(1)).to_contain_text("Paper (Bitget rules)")
    expect(rows.nth(1)).to_contain_text("Paper")
    content = page.content()
    for secret in ("ABCD-key-1234", "ABCD", "SECRET-value", "5678", "PASS-phrase", "9012"):
        assert secret not in content


def test_it_sends_the_user_back_where_they_were_going_after_login(page, trader, password):
    # given an anonymous visitor sent to the login page from a protected page
    page.goto("/exchange-accounts/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/exchange-accounts/$"))

    # when they log in there
    page.get_by_label("Email").fill(trader.email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

    # then they reach the page they asked for
    expect(page).to_have_url(re.compile(r"/exchange-accounts/$"))
    expect(page.get_by_role("heading", name="Exchange accounts")).to_be_visible()


def test_it_throttles_after_five_quick_wrong_passwords(page, trader, password):
    # given five wrong passwords in a row, each refused as such
    for _ in range(5):
        log_in(page, trader.email, "wrong password")
        expect(page.get_by_role("alert")).to_have_text("Invalid email or password")

    # when a sixth attempt comes at once, even with the right password
    log_in(page, trader.email, password)

    # then the page refuses it with the throttling message and nobody is logged in
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("alert")).to_contain_text("Too many failed login attempts")
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"Try again in \d+ seconds"))
    page.goto("/dashboard/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/dashboard/$"))


def test_it_logs_out_with_the_button_and_then_guards_the_dashboard(logged_in_page):
    page = logged_in_page

    # when the trader clicks "Log out"
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()

    # then they are back on the login page, told so
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.locator(".messages")).to_have_text("You are logged out.")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    # and the dashboard is closed to them again
    page.goto("/dashboard/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/dashboard/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
