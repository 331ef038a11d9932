"""An optimisation from its form to its results in headless Chromium, against real processes: a
daphne that sends the trials' tasks to a queue of the test's own, and a Celery worker started on
that queue only once the page is open, so that the page is seen following the trials live.

The trader fills the search-space editor (fast and slow ranges, the kind of average among its
choices, the rest fixed) and submits; the detail page shows the optimisation queued; a worker
then runs its trials, and the page's counts move on without a reload (``optimization.status``
over the live connection); when it is done the page reloads itself and draws the history chart,
the importances and the parallel coordinates, with no script error and nothing refused by the
Content-Security-Policy. The pages' screenshots are saved as test artifacts
(``$TEST_ARTIFACTS_DIR``, as in test_trader_flows.py).
The pages and forms themselves are tested in ``tests/backtests/test_optimization_pages.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from backtests.models import Optimization, TrialState
from tests.backtests.conftest import sample_candles, strategy_catalogue  # noqa: F401 - fixtures
from tests.backtests.worker_helpers import new_queue, worker_processes  # noqa: F401 - fixture
from tests.browser.conftest import log_in
from tests.browser.test_content_security_policy import RECORD_VIOLATIONS
from tests.browser.test_trader_flows import screenshot
from tests.conftest import server_env
from tests.daphne_process import Daphne, daphne_running

pytestmark = pytest.mark.browser

TRIALS = 30
WORKER_TIMEOUT = 120_000  # ms for the worker to run every trial (the machine is slow and shared)
# A live update can only bring counts between none and all: the page was rendered with none
# finished, and it reloads only once every trial has.
SOME_BUT_NOT_ALL = """() => {
  const counts = document.querySelector("#optimization-counts");
  if (counts === null) return false;
  const finished = Number(counts.dataset.finished);
  return finished > 0 && finished < Number(counts.dataset.total);
}"""


@pytest.fixture
def queue() -> str:
    return new_queue()


@pytest.fixture
def queue_daphne(server: Daphne, queue: str, tmp_path: Path) -> Iterator[Daphne]:
    """A daphne whose backtests, sweeps and optimisations go to ``queue``."""
    env = server_env(BACKTESTS_QUEUE=queue)
    with daphne_running(env=env, log_path=tmp_path / "daphne.log") as daphne:
        yield daphne


@pytest.fixture
def watched_page(browser: Any, queue_daphne: Daphne) -> Iterator[tuple[Any, list[str]]]:
    """A page on ``queue_daphne`` and the script errors it reports (thrown, or on the console)."""
    context = browser.new_context(
        base_url=queue_daphne.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    yield page, errors
    context.close()


def test_an_optimization_is_followed_live_from_its_form_to_its_charts(
    watched_page,
    trader,
    password,
    queue,
    worker_processes,  # noqa: F811 - the fixture imported above
    sample_candles,  # noqa: F811 - the fixture imported above
):
    page, errors = watched_page
    log_in(page, trader.email, password)

    # when the trader fills the form: MA Cross, fast, slow and the average searched, on the sample
    page.goto("/optimizations/new/")
    with page.expect_navigation():
        page.select_option("#id_strategy", "ma_cross")
    page.fill("#id_symbol", sample_candles.symbol)
    page.select_option("#id_timeframe", sample_candles.timeframe)
    page.check("#id_search_fast")
    page.fill("#id_low_fast", "3")
    page.fill("#id_high_fast", "20")
    page.check("#id_search_slow")
    page.fill("#id_low_slow", "25")
    page.fill("#id_high_slow", "80")
    page.fill("#id_step_slow", "5")
    page.check("#id_search_ma")  # no choices given: every one
    page.fill("#id_trials", str(TRIALS))
    page.fill("#id_seed", "11")
    screenshot(page, "optimization-new")
    with page.expect_navigation():
        page.click("#optimization-form button.primary")

    # then its page shows it queued, none of its trials finished, subscribed to its channel
    expect(page).to_have_url(re.compile(r"/optimizations/\d+/$"))
    optimization = Optimization.objects.get(user=trader)
    assert optimization.space == {
        "fast": {"low": 3, "high": 20, "step": 1},
        "slow": {"low": 25, "high": 80, "step": 5},
        "ma": {"choices": ["sma", "ema"]},
    }
    counts = page.locator("#optimization-counts")
    expect(counts).to_have_attribute("data-finished", "0")
    expect(counts).to_have_attribute("data-total", str(TRIALS))
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    page.wait_for_function("() => (Live.stats.received['optimization.snapshot'] || 0) > 0")
    screenshot(page, "optimization-queued")

    # when a worker starts on the daphne's queue
    # (its pool in a child process: a solo worker answers the start-up ping only between tasks,
    # and one task of an optimisation runs its trials one after the other)
    worker_processes(1, queue=queue, pool="prefork")

    # then the counts move on live, before the end
    page.wait_for_function(SOME_BUT_NOT_ALL, timeout=WORKER_TIMEOUT)
    expect(page.locator("#optimization-best-value")).not_to_have_text("—")
    # and once every trial has finished, the page reloads with the results and draws them
    expect(page.locator(".page-head .run-status [data-role='status']")).to_have_text(
        "Done", timeout=WORKER_TIMEOUT
    )
    optimization.refresh_from_db()
    complete = optimization.trials.filter(state=TrialState.COMPLETE).count()
    assert optimization.finished_count == TRIALS
    assert complete > 1
    expect(page.locator("#best-value")).to_be_visible()
    expect(page.locator("#history-chart canvas").first).to_be_visible()
    expect(page.locator("#history-chart")).to_have_attribute("data-points", str(complete))
    lines = page.locator("#parallel-chart svg polyline")
    expect(lines).to_have_count(complete)
    expect(page.locator("#parallel-chart svg polyline.best")).to_have_count(1)
    axes = page.locator("#parallel-chart svg .axis")
    expect(axes).to_have_count(4)  # fast, slow, ma, the value
    expect(axes.nth(2)).to_contain_text("sma")  # a choice axis names its choices
    expect(axes.nth(2)).to_contain_text("ema")
    bars = page.locator("#optimization-importances .importance-bar")
    expect(bars).to_have_count(3)
    widths = [bars.nth(n).evaluate("(bar) => bar.getBoundingClientRect().width") for n in (0, 1)]
    assert widths[0] >= widths[1] > 0  # largest first, drawn from data-shade
    expect(page.locator("#trials-table tbody tr")).to_have_count(TRIALS)
    screenshot(page, "optimization-detail")
    assert page.evaluate("window.__violations") == []
    assert errors == []
