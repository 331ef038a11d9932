"""The exchange accounts page in a real Chromium: add through the form, remove with confirm()."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from markets.models import ExchangeAccount
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

PAGE = "/exchange-accounts/"


@pytest.fixture
def accounts_page(logged_in_page):
    logged_in_page.get_by_role("link", name="Exchange accounts").click()
    expect(logged_in_page).to_have_url(re.compile(r"/exchange-accounts/$"))
    return logged_in_page


def _submit(page):
    with page.expect_navigation():
        page.get_by_role("button", name="Add account").click()


def test_it_adds_a_paper_account_through_the_form(accounts_page, trader):
    page = accounts_page
    expect(page.get_by_text("No exchange accounts yet.")).to_be_visible()

    # when the trader fills in a label, keeps the defaults (Bitget, paper) and submits
    expect(page.get_by_label("Paper", exact=True)).to_be_checked()
    page.get_by_label("Label").fill("Paper practice")
    _submit(page)

    # then the page confirms it and the table lists the account with its paper balance, without
    # any key
    expect(page).to_have_url(re.compile(r"/exchange-accounts/$"))
    expect(page.locator(".messages")).to_have_text("Exchange account “Paper practice” added.")
    rows = page.locator("#exchange-accounts tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td")).to_have_text(
        ["Paper practice", "Bitget", "Paper", re.compile(r"USDT 10000\s+paper ledger, now"), "—",
         re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$"), "Remove"]
    )  # fmt: skip
    saved = ExchangeAccount.objects.get(user=trader)
    assert (saved.label, saved.mode, saved.exchange) == ("Paper practice", "paper", "bitget")
    # and it is funded with the form's default starting balance
    funded = {b.currency: b.free for b in saved.paper_balances.all()}
    assert funded == {"USDT": 10000}


def test_it_shows_a_field_error_for_a_live_account_without_passphrase(accounts_page, trader):
    page = accounts_page

    # when the trader picks "Live" and gives a key and secret but no passphrase
    page.get_by_label("Label").fill("Live desk")
    page.get_by_label("Live").check()
    page.get_by_label("API key").fill("ABCD-key-1234")
    page.get_by_label("API secret").fill("SECRET-value-5678")
    _submit(page)

    # then the passphrase field, and only it, carries the error, and nothing is saved
    expect(page.locator("#id_passphrase + p.field-error")).to_have_text(
        "Required for a live account."
    )
    expect(page.locator("p.field-error")).to_have_count(1)
    expect(page.locator("#exchange-accounts")).to_have_count(0)
    expect(page.get_by_label("Label")).to_have_value("Live desk")
    expect(page.get_by_label("Live")).to_be_checked()
    # and the secret typed in is not sent back to the browser
    expect(page.get_by_label("API secret")).to_have_value("")
    assert "SECRET-value-5678" not in page.content()
    assert not ExchangeAccount.objects.filter(user=trader).exists()


def test_it_removes_an_account_once_the_confirm_dialog_is_accepted(
    accounts_page, trader, account_factory
):
    # given two accounts, one with quotes and markup in its label
    page = accounts_page
    old_label = """Old desk <O'Neil & "Co">"""
    account_factory(user=trader, label="Keep me", mode="paper")
    account_factory(user=trader, label=old_label, mode="paper")
    page.reload()
    rows = page.locator("#exchange-accounts tbody tr")
    expect(rows).to_have_count(2)

    # when the trader clicks "Remove" on the old desk and accepts the confirmation
    dialogs = []

    def accept(dialog):
        dialogs.append((dialog.type, dialog.message))
        dialog.accept()

    page.on("dialog", accept)
    with page.expect_navigation():
        rows.filter(has_text="Old desk").get_by_role("button", name="Remove").click()

    # then they were asked first, naming the label verbatim, and the account is gone from the
    # table and the database
    assert dialogs == [("confirm", f"Remove {old_label}?")]
    expect(page.locator(".messages")).to_have_text(f"Exchange account “{old_label}” removed.")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Keep me")
    labels = list(ExchangeAccount.objects.filter(user=trader).values_list("label", flat=True))
    assert labels == ["Keep me"]


def test_it_keeps_the_account_when_the_confirm_dialog_is_dismissed(
    accounts_page, trader, account_factory
):
    page = accounts_page
    account_factory(user=trader, label="Old desk", mode="paper")
    page.reload()

    page.evaluate("window.notReloaded = true")

    # when the trader clicks "Remove" and then cancels
    dialogs = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.get_by_role("button", name="Remove").click()

    # then nothing was submitted: after a round trip to the server the page is the same one,
    # and the account is still listed and stored
    assert dialogs == ["Remove Old desk?"]
    assert page.evaluate("fetch('/healthz').then((r) => r.status)") == 200
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#exchange-accounts tbody tr")).to_have_count(1)
    expect(page.locator(".messages")).to_have_count(0)
    assert ExchangeAccount.objects.filter(user=trader, label="Old desk").exists()


def test_it_never_shows_another_users_accounts(
    page, trader, other_trader, password, account_factory
):
    # given another trader's live account and one of our own
    theirs = account_factory(
        user=other_trader, label="Their private desk", mode="live",
        api_key="ZZZZ-their-key-7777", api_secret="their-secret", passphrase="their-pass",
    )  # fmt: skip
    account_factory(user=trader, label="My paper desk", mode="paper")

    # when our trader logs in and looks at the dashboard and the accounts page
    log_in(page, trader.email, password)
    dashboard = page.content()
    page.goto("/exchange-accounts/")
    accounts_page = page.content()

    # then only their own account is listed anywhere
    expect(page.locator("#exchange-accounts tbody tr")).to_have_count(1)
    expect(page.locator("#exchange-accounts")).to_contain_text("My paper desk")
    for content in (dashboard, accounts_page):
        assert "My paper desk" in content
        assert "Their private desk" not in content
        assert "7777" not in content
        assert other_trader.email not in content
    # and the other account cannot be removed by posting its id with our session
    status = page.evaluate(
        """async (id) => {
            const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
            const response = await fetch(`/exchange-accounts/${id}/delete/`, {
                method: "POST",
                headers: {"Content-Type": "application/x-www-form-urlencoded"},
                body: new URLSearchParams({csrfmiddlewaretoken: token}),
            });
            return response.status;
        }""",
        theirs.pk,
    )
    assert status == 404
    theirs.refresh_from_db()
    assert theirs.label == "Their private desk"
