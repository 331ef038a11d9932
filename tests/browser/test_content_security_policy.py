"""The pages obey their Content-Security-Policy in a real Chromium (tradingbot/security.py): the
dashboard, a bot page, the forms, the admin and the API docs load, run their scripts and show
their styles with no violation reported, neither as an event nor on the console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from bots.models import Bot
from strategies.services import strategy_catalogue_sync
from tests.backtests.conftest import sample_candles, strategy_catalogue  # noqa: F401 - fixtures
from tests.backtests.test_pages import make_sweep
from tests.bots.bot_helpers import paper_account, replay_bot, store_candles
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

# Collects what the browser reports as refused by the policy.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}`);
});
"""
POLICY_WORDS = re.compile(
    r"Content Security Policy|Content-Security-Policy|Permissions.Policy", re.I
)


class Watched:
    """A page whose CSP violations and console complaints about the policies are recorded."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._on_console)

    def _on_console(self, message: Any) -> None:
        if POLICY_WORDS.search(message.text):
            self.console.append(f"{self.page.url}: {message.text}")

    def visit(self, path: str) -> Any:
        response = self.page.goto(path)
        assert response is not None, path
        assert response.status == 200, path
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        self.page.wait_for_load_state("load")
        return self.page

    def assert_clean(self) -> None:
        violations = self.page.evaluate("window.__violations || []")
        assert violations == [], f"{self.page.url}: {violations}"
        assert self.console == [], self.console


@pytest.fixture
def watched(page: Any) -> Iterator[Watched]:
    watcher = Watched(page)
    yield watcher
    watcher.assert_clean()


def test_the_traders_pages_run_within_the_policy(watched, trader, password):
    # given: a bot on a paper account with candles for its chart
    strategy_catalogue_sync()
    rows = store_candles(0, 300)
    account = paper_account(trader, label="Desk & co")
    bot = replay_bot(trader, account, start_ms=rows[250].open_time).bot
    page = watched.page
    # when / then: the login page fills in the browser's time zone from page.js
    watched.visit("/accounts/login/")
    assert page.locator("#id_time_zone").input_value() != ""
    log_in(page, trader.email, password)
    watched.assert_clean()
    # the dashboard and the bot page, whose scripts draw the chart and open the live socket
    watched.visit("/dashboard/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    watched.assert_clean()
    watched.visit(f"/bots/{bot.pk}/")
    expect(page.locator("#bot-chart canvas").first).to_be_attached()
    watched.assert_clean()
    # its signal webhook: the button makes a token, shown once with a TradingView message
    with page.expect_navigation():
        page.get_by_role("button", name="Enable signals: make a token").click()
    assert "/api/signals/" in page.locator("#signal-webhook-url").input_value()
    expect(page.locator("#signal-alert-example")).to_contain_text("{{strategy.market_position}}")
    expect(page.locator("#signal-status")).to_contain_text("Signals enabled")
    watched.assert_clean()
    # the run form: changing the strategy submits it (no inline onchange)
    watched.visit("/backtests/new/")
    select = page.locator("select[name=strategy]")
    other = select.locator("option").nth(1).get_attribute("value")
    with page.expect_navigation():
        select.select_option(other)
    expect(select).to_have_value(other)
    watched.assert_clean()
    # removing an account asks first (no inline onsubmit); declining keeps it
    watched.visit("/exchange-accounts/")
    dialogs: list[str] = []

    def decline(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    page.get_by_role("button", name="Remove").click()
    expect(page.locator("#exchange-accounts tbody tr")).to_have_count(1)
    assert dialogs == ["Remove Desk & co?"]


def test_the_admin_runs_within_the_policy(watched, trader_factory, password):
    # given
    staff = trader_factory(is_staff=True, is_superuser=True)
    page = watched.page
    # when: the admin's login, index (with the staff overview), a list and the kill switch
    watched.visit("/admin/login/")
    watched.assert_clean()
    log_in(page, staff.email, password)
    for path in (
        "/admin/",
        "/admin/bots/bot/",
        "/admin/bots/bot/kill-switch/",
        "/admin/accounts/user/",
    ):
        watched.visit(path)
        watched.assert_clean()
    # then: the staff overview is styled from its stylesheet
    watched.visit("/admin/")
    width = page.evaluate("getComputedStyle(document.querySelector('#staff-overview table')).width")
    assert width != "auto"


def test_the_api_docs_run_within_the_policy(watched, trader, password):
    page = watched.page
    log_in(page, trader.email, password)
    watched.visit("/api/docs/")
    # Swagger UI renders the schema's operations
    expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=20_000)
    expect(page.get_by_text("/api/bots/{id}/start").first).to_be_visible()


# The red, green and blue of an element's computed background.
BACKGROUND_RGB = (
    "(el) => getComputedStyle(el).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)"
)


def test_a_sweep_row_becomes_a_bot_from_a_heat_map_shaded_within_the_policy(
    watched,
    trader,
    password,
    sample_candles,  # noqa: F811 - the fixture imported above
):
    # given: a finished sweep (one combination gained, five lost, one of them only -1.76 %),
    # and a paper account on its exchange
    sweep = make_sweep(trader, sample_candles)
    paper_account(trader)
    page = watched.page
    log_in(page, trader.email, password)
    # when
    watched.visit(f"/sweeps/{sweep.pk}/")
    # then: each cell's shade is set from its data-shade (no inline style attribute)
    cells = page.locator("#heat-map td[data-shade]")
    expect(cells).to_have_count(6)
    for n in range(6):
        cell = cells.nth(n)
        shade = cell.evaluate("(td) => getComputedStyle(td).getPropertyValue('--shade').trim()")
        assert shade == cell.get_attribute("data-shade")
    # and the colours are centred on zero: the smallest loss is red, the gain green
    small_loss = page.locator("#heat-map td.heat", has_text="-1.76 %")
    expect(small_loss).to_have_attribute("data-tone", "loss")
    red, green, _ = small_loss.evaluate(BACKGROUND_RGB)
    assert red > green, (red, green)
    gain = page.locator("#heat-map td.heat-gain")
    expect(gain).to_have_count(1)
    red, green, _ = gain.evaluate(BACKGROUND_RGB)
    assert green > red, (red, green)

    # when: the best ranking row's "Create bot" is followed
    best = page.locator("#sweep-ranking tbody tr").first
    combination = sweep.runs.get(seq=int(best.get_attribute("data-seq") or ""))
    with page.expect_navigation():
        best.locator("a.create-bot").click()
    # then: the bot form shows that combination (the best: fast 10, slow 40)
    expect(page.locator("select[name=strategy]")).to_have_value("ma_cross")
    expect(page.locator("[name='ma_cross-fast']")).to_have_value("10")
    expect(page.locator("[name='ma_cross-slow']")).to_have_value("40")
    expect(page.locator("[name=symbol]")).to_have_value("BTC/USDT")
    expect(page.locator("select[name=timeframe]")).to_have_value("5m")
    # a replay starts where the sweep did, in the trader's time zone, within the stored range
    page.locator("[name=data_source][value=replay]").check()
    start = page.evaluate("(ms) => Format.localTime(ms).replace(' ', 'T')", sweep.start_ms)
    expect(page.locator("[name=replay_start]")).to_have_value(start)
    expect(page.locator("#replay-range")).to_contain_text("Stored 5m candles of BTC/USDT on bitget")
    watched.assert_clean()
    # and created as shown, it is the bot of that combination
    with page.expect_navigation():
        page.locator("#bot-form button[type=submit]").click()
    bot = Bot.objects.get(user=trader)
    assert page.url.endswith(f"/bots/{bot.pk}/")
    assert bot.params == combination.params
    assert (bot.symbol, bot.timeframe, bot.status) == ("BTC/USDT", "5m", "stopped")
    assert (bot.data_source, bot.replay_start_ms) == ("replay", sweep.start_ms)
