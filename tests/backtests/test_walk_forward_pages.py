"""The walk-forward pages: the list, the form (searched parameters typed as a sweep's grid), a
walk-forward's windows and stitched result, cancel, and scoping to the owner. Runs are created by
the form or the service and run in-process with the tasks' bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backtests.models import Optimization, RunStatus, WalkForward
from backtests.services import candle_cache
from tests.backtests.test_pages import (
    _children,
    backtest_form,
    field_errors,
    find,
    find_all,
    html,
    tags,
    text,
    trader_client,
)
from tests.backtests.walk_forward_helpers import create_walk_forward, run_walk_forward
from tests.factories import UserFactory

__all__ = ["trader_client"]  # a fixture, imported for pytest to find

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_candles() -> None:
    candle_cache.forget()


def walk_forward_form(market: Any, **overrides: Any) -> dict[str, Any]:
    """A valid new-walk-forward form as a browser posts it."""
    form = {
        **backtest_form(market),
        "param_fast": "5:20:5",
        "param_slow": "30, 50",
        "param_ma": "sma",
        "in_sample_days": "4",
        "out_of_sample_days": "2",
        "windows": "4",
        "objective": "sharpe",
        "trials": "6",
        "sampler": "",
        "min_trades": "1",
        "seed": "",
    }
    return {**form, **overrides}


def queued_walk_forward(user: Any, market: Any, capture: Any, **overrides: Any) -> WalkForward:
    with capture(execute=False):
        return create_walk_forward(user, market, **overrides)


def test_the_form_searches_ranges_and_lists_and_fixes_single_values(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    form = walk_forward_form(sample_candles, anchored="on", seed="3")

    with django_capture_on_commit_callbacks(execute=False):
        response = trader_client.post("/walk-forwards/new/", form)

    walk_forward = WalkForward.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/walk-forwards/{walk_forward.pk}/"
    assert walk_forward.space == {
        "fast": {"low": 5, "high": 20, "step": 5},
        "slow": {"choices": [30, 50]},
    }
    assert walk_forward.params == {"ma": "sma"}
    assert (walk_forward.window_count, walk_forward.anchored, walk_forward.seed) == (4, True, 3)
    assert (walk_forward.trials_per_window, walk_forward.objectives) == (6, [{"sharpe": 1.0}])
    assert walk_forward.user == user
    assert Optimization.objects.filter(walk_forward_window__walk_forward=walk_forward).count() == 4


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"param_fast": "10", "param_slow": "30"}, None, "Give a range (5:50:5) or several"),
        ({"windows": "8"}, "end", "at least "),
        ({"windows": "21"}, "windows", "Ensure this value is less than or equal to 20."),
        ({"in_sample_days": "x"}, "in_sample_days", "A valid integer is required."),
        ({"param_slow": "20:40"}, "param_slow", "Write a range as start:stop:step"),
    ],
)
def test_a_refused_form_says_why_next_to_its_field_and_stores_nothing(
    trader_client, sample_candles, overrides, field, message
):
    form = walk_forward_form(sample_candles, **overrides)

    response = trader_client.post("/walk-forwards/new/", form)

    assert response.status_code == 400
    page = html(response)
    errors = (
        field_errors(page, field)
        if field
        else [text(p) for p in tags(find(page, id="form-errors"), "p")]
    )
    assert any(error.startswith(message) for error in errors), errors
    assert not WalkForward.objects.exists()
    assert not Optimization.objects.exists()


def test_the_list_links_each_walk_forward_and_the_nav_leads_to_it(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    empty = html(trader_client.get("/walk-forwards/"))
    assert find_all(empty, class_="empty-state")
    walk_forward = queued_walk_forward(user, sample_candles, django_capture_on_commit_callbacks)

    page = html(trader_client.get("/walk-forwards/"))

    row = find(page, id=f"walk-forward-{walk_forward.pk}")
    assert f"/walk-forwards/{walk_forward.pk}/" in [
        dict(a.attributes)["href"] for a in tags(row, "a")
    ]
    assert "4 × 4 d / 2 d" in text(row)
    nav = find(page, class_="nav")
    current = [a for a in tags(nav, "a") if dict(a.attributes).get("aria-current") == "page"]
    assert [text(a) for a in current] == ["Walk-forwards"]


def test_a_finished_walk_forward_shows_its_windows_equity_and_overfitting_ratio(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    walk_forward = queued_walk_forward(user, sample_candles, django_capture_on_commit_callbacks)
    walk_forward = run_walk_forward(walk_forward)
    assert walk_forward.status == RunStatus.DONE

    page = html(trader_client.get(f"/walk-forwards/{walk_forward.pk}/"))

    windows = find(page, id="walk-forward-windows")
    rows = [
        row
        for row in tags(windows, "tr")
        if dict(row.attributes).get("id", "").startswith("window-")
    ]
    assert len(rows) == 4
    for window, row in zip(walk_forward.windows.order_by("index"), rows, strict=True):
        cells = [text(cell) for cell in tags(row, "td")]
        assert cells[0] == str(window.index + 1)
        assert cells[4:6] == [str(window.params["fast"]), str(window.params["slow"])]
        assert f"{window.out_of_sample_metrics['total_return'] * 100:.2f} %" in cells
    script = find(page, id="walk-forward-equity-data")
    assert json.loads("".join(str(c) for c in _children(script))) == walk_forward.equity
    ratio = text(find(page, id="walk-forward-ratio"))
    if walk_forward.overfitting_ratio is None:
        assert "There is no ratio" in ratio
    else:
        assert f"{walk_forward.overfitting_ratio:.2f}" in ratio
    total = text(find(page, id="walk-forward-metrics"))
    assert f"{walk_forward.metrics['total_return'] * 100:.2f} %" in total


def test_an_active_walk_forward_shows_its_progress_and_can_be_cancelled(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    walk_forward = queued_walk_forward(user, sample_candles, django_capture_on_commit_callbacks)

    page = html(trader_client.get(f"/walk-forwards/{walk_forward.pk}/"))
    counts = text(find(page, id="walk-forward-counts"))
    cancelled = trader_client.post(f"/walk-forwards/{walk_forward.pk}/cancel/", follow=True)

    assert counts == "0 of 4 windows done, 0 of 12 trials finished"
    progress = find(page, id="walk-forward-progress")
    assert dict(progress.attributes)["data-reload-on-finish"] == f"walk_forward:{walk_forward.pk}"
    assert cancelled.status_code == 200
    walk_forward.refresh_from_db()
    assert walk_forward.status == RunStatus.CANCELLED
    assert f"Walk-forward #{walk_forward.pk} cancelled." in cancelled.content.decode()


def test_another_traders_walk_forward_is_a_404(
    client, user, sample_candles, django_capture_on_commit_callbacks
):
    walk_forward = queued_walk_forward(user, sample_candles, django_capture_on_commit_callbacks)
    client.force_login(UserFactory())

    assert client.get(f"/walk-forwards/{walk_forward.pk}/").status_code == 404
    assert client.post(f"/walk-forwards/{walk_forward.pk}/cancel/").status_code == 404
    assert not find_all(html(client.get("/walk-forwards/")), id=f"walk-forward-{walk_forward.pk}")
    walk_forward.refresh_from_db()
    assert walk_forward.status == RunStatus.QUEUED
