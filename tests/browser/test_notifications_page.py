"""The notifications page in a real Chromium: from the nav, a refused URL, add a channel, send a
test that a real local HTTP server receives, remove it behind its confirmation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.models import NotificationChannel

pytestmark = pytest.mark.browser


def test_a_trader_adds_tests_and_removes_a_channel(logged_in_page, trader, webhook_server):
    page = logged_in_page
    page.get_by_role("link", name="Notifications").click()
    expect(page).to_have_url(re.compile(r"/notifications/$"))
    expect(page.get_by_text("No channels yet")).to_be_visible()
    # a URL Apprise cannot use is refused next to its field, and not sent back
    page.get_by_label("Name").fill("phone")
    page.get_by_label("Apprise URL").fill("nonsense://tok-zzz999999")
    with page.expect_navigation():
        page.get_by_role("button", name="Add channel").click()
    expect(page.locator(".field-error")).to_have_text("Not a URL Apprise supports.")
    assert "tok-zzz999999" not in page.content()
    # added with every event but the daily summary: the URL masked
    page.get_by_label("Apprise URL").fill(webhook_server.url("tok-abcdef123456"))
    page.get_by_role("checkbox", name="Daily summary").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Add channel").click()
    row = page.locator("#notification-channels tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text("json://••••")
    assert "daily_summary" not in NotificationChannel.objects.get(user=trader).kinds
    assert "tok-abcdef123456" not in page.content()
    # a test message reaches the local server
    with page.expect_navigation():
        page.get_by_role("button", name="Send test").click()
    expect(page.locator(".messages")).to_have_text("Test message sent to “phone”.")
    assert webhook_server.wait_for(1)[0].body["title"] == "Test message"
    # removed behind its confirmation
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Remove").click()
    expect(page.get_by_text("No channels yet")).to_be_visible()
    assert not NotificationChannel.objects.filter(user=trader).exists()
