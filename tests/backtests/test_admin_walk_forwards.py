"""Walk-forwards in the admin: a finished one's page with its windows, cancel and re-run through
the services, delete taking the windows' optimisations along; windows are read-only."""

from __future__ import annotations

import pytest

from backtests.models import Optimization, RunStatus, WalkForward, WalkForwardWindow
from backtests.services import candle_cache
from tests.admin_helpers import run_admin_action, shown_messages
from tests.backtests.walk_forward_helpers import create_walk_forward, run_walk_forward

pytestmark = pytest.mark.django_db

ADMIN = "/admin/backtests"


@pytest.fixture(autouse=True)
def _fresh_candles() -> None:
    candle_cache.forget()


@pytest.fixture
def queued(user, sample_candles, django_capture_on_commit_callbacks) -> WalkForward:
    with django_capture_on_commit_callbacks(execute=False):
        return create_walk_forward(user, sample_candles, windows=2, trials=2)


def test_a_finished_walk_forward_shows_its_windows_and_result(staff_client, queued) -> None:
    done = run_walk_forward(queued)
    assert done.status == RunStatus.DONE

    page = staff_client.get(f"{ADMIN}/walkforward/{done.pk}/change/")
    listed = staff_client.get(f"{ADMIN}/walkforward/")
    windows = staff_client.get(f"{ADMIN}/walkforwardwindow/")

    assert page.status_code == 200
    html = page.content.decode()
    assert f"{done.metrics['total_return'] * 100:+.2f} %" in html
    for window in done.windows.all():
        assert f"#{window.optimization_id}" in html
    assert listed.status_code == 200
    assert windows.status_code == 200
    window = done.windows.first()
    assert staff_client.get(f"{ADMIN}/walkforwardwindow/{window.pk}/change/").status_code == 200
    assert staff_client.get(f"{ADMIN}/walkforwardwindow/{window.pk}/delete/").status_code == 403


def test_cancel_and_rerun_go_through_the_services(
    staff_client, queued, django_capture_on_commit_callbacks
) -> None:
    response = run_admin_action(
        staff_client, f"{ADMIN}/walkforward/", "cancel_walk_forwards", [queued]
    )
    queued.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    assert shown_messages(response) == ["1 walk-forward(s) cancelled."]
    assert set(Optimization.objects.values_list("status", flat=True)) == {RunStatus.CANCELLED}

    with django_capture_on_commit_callbacks(execute=False):
        run_admin_action(staff_client, f"{ADMIN}/walkforward/", "rerun_walk_forwards", [queued])

    again = WalkForward.objects.exclude(pk=queued.pk).get()
    assert (again.status, again.window_count, again.trials_per_window) == (RunStatus.QUEUED, 2, 2)
    assert again.windows.filter(optimization__status=RunStatus.QUEUED).count() == 2


def test_deleting_a_walk_forward_deletes_its_windows_and_their_optimisations(
    staff_client, queued
) -> None:
    url = f"{ADMIN}/walkforward/{queued.pk}/delete/"

    confirmation = staff_client.get(url)

    assert dict(confirmation.context["model_count"]) == {
        "walk-forwards": 1,
        "windows and their optimisations": 2,
    }
    assert staff_client.post(url, {"post": "yes"}).status_code == 302
    assert not WalkForward.objects.exists()
    assert not WalkForwardWindow.objects.exists()
    assert not Optimization.objects.exists()
