"""Optimisations and their trials in the admin, through the Django test client as a superuser:
read-only results, re-run and cancel through the services (each logged as a ``LogEntry``), a
delete that counts the trials it takes, and trials deleted only with their optimisation."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry

from backtests.models import Optimization, OptimizationTrial, RunStatus
from tests.admin_helpers import run_admin_action, shown_messages
from tests.backtests.optimization_helpers import create_optimization, make_optimization

ADMIN = "/admin/backtests"


@pytest.mark.django_db(transaction=True)
def test_the_pages_show_the_best_result_and_the_trials_and_a_delete_takes_them(
    staff_client, user, sample_candles
):
    # given a finished optimisation
    optimization = make_optimization(user, sample_candles, trials=6)
    best = optimization.best_params or {}

    # when its list and its page are opened
    listing = staff_client.get(f"{ADMIN}/optimization/?status__exact=done")
    page = staff_client.get(f"{ADMIN}/optimization/{optimization.pk}/change/")

    # then the list shows its best result and trials, and its page every trial, read-only
    assert listing.status_code == page.status_code == 200
    assert [row.pk for row in listing.context["cl"].result_list] == [optimization.pk]
    shown = ", ".join(f"{name}={value}" for name, value in sorted(best.items()))
    assert f"#{optimization.best_trial} {optimization.best_value:.4g}: {shown}" in (
        listing.content.decode()
    )
    assert "6/0/0 of 6" in listing.content.decode()
    assert page.context["has_change_permission"] is False
    inline = page.context["inline_admin_formsets"][0]
    assert [form.original.number for form in inline] == list(range(6))
    # and a trial's own page renders, but it is deleted only with its optimisation
    trial = OptimizationTrial.objects.filter(optimization=optimization).first()
    assert trial is not None
    assert staff_client.get(f"{ADMIN}/optimizationtrial/{trial.pk}/change/").status_code == 200
    assert staff_client.get(f"{ADMIN}/optimizationtrial/{trial.pk}/delete/").status_code == 403

    # when the optimisation is deleted, then its trials count on the confirmation and go with it
    url = f"{ADMIN}/optimization/{optimization.pk}/delete/"
    assert dict(staff_client.get(url).context["model_count"]) == {
        "optimisations": 1,
        "optimisation trials": 6,
    }
    assert staff_client.post(url, {"post": "yes"}).status_code == 302
    assert not Optimization.objects.exists()
    assert not OptimizationTrial.objects.exists()


@pytest.mark.django_db
def test_cancel_and_re_run_go_through_the_services_and_are_logged(
    staff_client, user, sample_candles, django_capture_on_commit_callbacks
):
    # given a queued optimisation
    with django_capture_on_commit_callbacks(execute=False):
        optimization = create_optimization(user, sample_candles, trials=5)

    # when staff cancel it, then re-run it
    cancelled = run_admin_action(
        staff_client, f"{ADMIN}/optimization/", "cancel_optimizations", [optimization]
    )
    with django_capture_on_commit_callbacks(execute=False):
        rerun = run_admin_action(
            staff_client, f"{ADMIN}/optimization/", "rerun_optimizations", [optimization]
        )

    # then it is cancelled, and a new one of the same search is queued
    optimization.refresh_from_db()
    assert optimization.status == RunStatus.CANCELLED
    assert "1 optimization(s) cancelled." in shown_messages(cancelled)
    assert "1 optimization(s) queued again." in shown_messages(rerun)
    again = Optimization.objects.exclude(pk=optimization.pk).get()
    assert (again.status, again.space, again.objectives, again.trial_count, again.seed) == (
        RunStatus.QUEUED,
        optimization.space,
        optimization.objectives,
        5,
        optimization.seed,
    )
    # and both actions are in the audit trail
    messages = set(
        LogEntry.objects.filter(object_id=str(optimization.pk), action_flag=CHANGE).values_list(
            "change_message", flat=True
        )
    )
    assert messages == {
        "Cancelled (admin action).",
        f"Re-run (admin action) as optimization #{again.pk}.",
    }
