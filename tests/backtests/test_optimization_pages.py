"""The optimisation pages through the Django test client: the list, the form (its search-space
editor and objective, and every refusal shown next to its field with nothing stored), the detail
of an optimisation run in-process by the workers' own task body (best parameters, trials,
history, importances, parallel coordinates, the Pareto front), its actions, and the owner's
scope (another trader's optimisation is a 404 everywhere)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backtests.models import Backtest, Optimization, OptimizationTrial, RunStatus, TrialState
from tests.backtests.conftest import SampleMarket
from tests.backtests.optimization_helpers import SPACE, create_optimization, make_optimization
from tests.backtests.test_pages import (
    backtest_form,
    field_errors,
    find,
    find_all,
    html,
    tags,
    text,
)
from tests.factories import UserFactory

DETAIL_TRIALS = 12


@pytest.fixture
def trader_client(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def optimization_form(market: SampleMarket, **overrides: Any) -> dict[str, Any]:
    """A valid new-optimisation form as a browser posts it: fast 5 to 20 and slow 30 to 60 (step 10)
    searched, ma fixed to EMA, maximising the Sharpe ratio over 20 trials."""
    form = {
        **backtest_form(market),
        "param_fast": "",
        "param_slow": "",
        "param_ma": "ema",
        "search_fast": "on",
        "low_fast": "5",
        "high_fast": "20",
        "search_slow": "on",
        "low_slow": "30",
        "high_slow": "60",
        "step_slow": "10",
        "objective_kind": "one",
        "metric_1": "sharpe",
        "weight_1": "1",
        "trials": "20",
        "sampler": "",
        "min_trades": "1",
        "seed": "",
    }
    return form | overrides


def page_data(page: Any) -> dict[str, Any]:
    script = find(page, id="optimization-data")
    loaded: dict[str, Any] = json.loads("".join(str(child) for child in script.children))
    return loaded


def form_errors(page: Any) -> list[str]:
    return [text(p) for p in tags(find(page, id="form-errors"), "p")]


# --- access -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/optimizations/", "/optimizations/new/", "/optimizations/1/"])
def test_it_sends_anonymous_visitors_to_the_login_page(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


@pytest.mark.django_db
def test_the_empty_list_says_what_to_do_and_the_nav_links_to_it(trader_client, strategy_catalogue):
    page = html(trader_client.get("/optimizations/"))

    empty = find(page, class_="empty-state")
    assert "No optimisations yet." in text(empty)
    assert [dict(a.attributes)["href"] for a in tags(empty, "a")] == ["/optimizations/new/"]
    nav = find(page, class_="nav")
    current = [a for a in tags(nav, "a") if dict(a.attributes).get("aria-current") == "page"]
    assert [text(a) for a in current] == ["Optimisations"]


# --- the form -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_form_has_a_search_row_per_parameter_of_the_strategy_in_the_query(
    trader_client, sample_candles
):
    page = html(trader_client.get("/optimizations/new/?strategy=bollinger_breakout"))

    selected = [o for o in tags(find(page, id="id_strategy"), "option") if o.attributes]
    chosen = [dict(o.attributes)["value"] for o in selected if "selected" in dict(o.attributes)]
    assert chosen == ["bollinger_breakout"]
    offered = {dict(o.attributes)["value"] for o in selected}
    assert "ma_cross" in offered
    assert "signals" not in offered  # it trades on a bot's signals only: nothing to backtest
    rows = find_all(find(page, id="search-space"), **{"data-param": "k"})
    assert len(rows) == 1
    names = {dict(i.attributes).get("name") for i in tags(rows[0], "input")}
    assert {"search_k", "param_k", "low_k", "high_k", "step_k", "log_k", "choices_k"} <= names
    period = find_all(find(page, id="search-space"), **{"data-param": "period"})
    assert period


@pytest.mark.django_db
def test_a_valid_form_stores_the_search_it_describes_and_opens_it(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    form = optimization_form(
        sample_candles,
        search_ma="on",  # every choice
        choices_ma="",
        objective_kind="mix",
        metric_2="calmar",
        weight_2="0.5",
        sampler="random",
        seed="42",
        min_trades="5",
    )

    with django_capture_on_commit_callbacks(execute=False):
        response = trader_client.post("/optimizations/new/", form)

    optimization = Optimization.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/optimizations/{optimization.pk}/"
    assert optimization.space == {
        "fast": {"low": 5, "high": 20, "step": 1},
        "slow": {"low": 30, "high": 60, "step": 10},
        "ma": {"choices": ["sma", "ema"]},
    }
    assert optimization.params == {"allow_short": False}
    assert optimization.objectives == [{"sharpe": 1.0, "calmar": 0.5}]
    assert (optimization.sampler, optimization.seed, optimization.min_trades) == ("random", 42, 5)
    assert (optimization.trial_count, optimization.user, optimization.status) == (
        20,
        user,
        "queued",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "objectives", "sampler"),
    [
        ({}, [{"sharpe": 1.0}], "tpe"),
        (
            {"objective_kind": "several", "metric_2": "max_drawdown"},
            [{"sharpe": 1.0}, {"max_drawdown": 1.0}],
            "nsga2",
        ),
        ({"metric_1": "profit_drawdown"}, [{"profit_drawdown": 1.0}], "tpe"),
    ],
)
def test_the_objective_is_one_metric_or_several(
    trader_client, sample_candles, django_capture_on_commit_callbacks, overrides, objectives,
    sampler,
):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        response = trader_client.post(
            "/optimizations/new/", optimization_form(sample_candles, **overrides)
        )

    assert response.status_code == 302
    optimization = Optimization.objects.get()
    assert (optimization.objectives, optimization.sampler) == (objectives, sampler)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"search_fast": "", "search_slow": ""}, None, "Tick “Search” for at least one"),
        ({"low_fast": ""}, "low_fast", "Give Low and High (an integer between 2 and 500)"),
        ({"low_fast": "30", "high_fast": "10"}, "low_fast", "low and high must be numbers"),
        ({"high_fast": "900"}, "low_fast", "fast must be an integer between 2 and 500, got 900"),
        ({"step_fast": "0.5"}, "low_fast", "step must be an integer"),
        ({"search_ma": "on", "choices_ma": "sma, wma"}, "choices_ma", "Each value must be one of"),
        ({"choices_fast": "5, 10"}, "choices_fast", "Give a range (Low, High) or choices"),
        ({"param_ma": "wma"}, "param_ma", "Select a valid choice"),
        ({"metric_2": "calmar"}, "objective_kind", "Several metrics: pick a weighted mix"),
        (
            {"objective_kind": "mix", "metric_2": "calmar", "weight_2": "-1"},
            "metric_1",
            "every weight must be a positive number",
        ),
        ({"objective_kind": "several", "metric_2": "sharpe"}, "metric_2", "Each metric once."),
        ({"trials": "0"}, "trials", "Ensure this value is greater than or equal to 1."),
        ({"trials": "many"}, "trials", "A valid integer is required."),
        ({"symbol": "NOPE/USDT"}, "symbol", "Unknown symbol on bitget."),
    ],
)
def test_a_refused_form_answers_400_with_the_message_next_to_its_field_and_stores_nothing(
    trader_client, sample_candles, overrides, field, message
):
    response = trader_client.post(
        "/optimizations/new/", optimization_form(sample_candles, **overrides)
    )

    assert response.status_code == 400
    page = html(response)
    errors = field_errors(page, field) if field else form_errors(page)
    assert any(message in error for error in errors), errors
    assert not Optimization.objects.exists()


@pytest.mark.django_db
def test_a_grid_over_an_unstepped_float_range_names_the_parameter(trader_client, sample_candles):
    form = {
        **optimization_form(sample_candles, strategy="bollinger_breakout", sampler="grid"),
        "search_fast": "",
        "search_slow": "",
        "search_k": "on",
        "low_k": "1.5",
        "high_k": "3",
    }

    response = trader_client.post("/optimizations/new/", form)

    assert response.status_code == 400
    assert field_errors(html(response), "low_k") == ["give a step for the grid sampler"]
    assert not Optimization.objects.exists()


# --- the detail page ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_finished_optimization_shows_its_best_trials_history_and_importances(
    trader_client, user, sample_candles
):
    # given an optimisation whose trials the workers' task body ran
    optimization = make_optimization(user, sample_candles, trials=DETAIL_TRIALS)
    assert optimization.status == RunStatus.DONE

    # when its page is opened
    page = html(trader_client.get(f"/optimizations/{optimization.pk}/"))

    # then the best trial's parameters and metrics are shown, with their actions
    best = find(page, id="optimization-best")
    assert f"trial #{optimization.best_trial}" in text(best)
    shown = {
        dict(row.attributes)["data-param"]: text(tags(row, "td")[0]).split()[0]
        for row in tags(find(page, id="best-params"), "tr")
    }
    assert shown == {name: str(value) for name, value in optimization.best_params.items()}
    assert f"{optimization.best_value:.4g}" == text(find(page, id="best-value"))
    trades = find(find(page, id="best-metrics"), **{"data-metric": "trade_count"})
    assert text(trades).endswith(str(optimization.best_metrics["trade_count"]))
    bot_link = dict(find(page, id="best-bot").attributes)["href"]
    assert f"param_fast={optimization.best_params['fast']}" in bot_link
    # and a row per trial, the best one marked
    rows = tags(find(page, id="trials-table"), "tr")[1:]
    assert [dict(row.attributes)["data-trial"] for row in rows] == [
        str(n) for n in range(DETAIL_TRIALS)
    ]
    best_rows = [row for row in rows if "best" in dict(row.attributes).get("class", "")]
    assert [dict(row.attributes)["data-trial"] for row in best_rows] == [
        str(optimization.best_trial)
    ]
    # and the charts' data: each complete trial's value and the best so far, on parallel axes
    data = page_data(page)
    complete = OptimizationTrial.objects.filter(
        optimization=optimization, state=TrialState.COMPLETE
    ).order_by("number")
    assert [row["number"] for row in data["history"]] == [t.number for t in complete]
    assert data["history"][-1]["best"] == optimization.best_value
    assert [axis["name"] for axis in data["axes"]] == list(SPACE)
    assert [axis["kind"] for axis in data["axes"]] == ["range", "range"]
    assert {row["number"]: row["params"] for row in data["trials"]} == {
        t.number: {"fast": t.params["fast"], "slow": t.params["slow"]} for t in complete
    }
    assert data["best_trial"] == optimization.best_trial
    # and an importance bar per searched parameter
    bars = find_all(find(page, id="optimization-importances"), class_="importance-bar")
    assert len(bars) == 2
    assert max(float(dict(bar.attributes)["data-shade"]) for bar in bars) == 1.0


@pytest.mark.django_db(transaction=True)
def test_the_trials_sort_by_value_filter_by_state_and_a_trial_opens_as_a_backtest(
    trader_client, user, sample_candles
):
    # given a finished optimisation where fast may pass slow: some trials are skipped
    space = {"fast": {"low": 5, "high": 60, "step": 5}, "slow": {"low": 20, "high": 40, "step": 5}}
    optimization = make_optimization(
        user, sample_candles, space=space, trials=DETAIL_TRIALS, sampler="random"
    )
    assert optimization.pruned_count > 0
    url = f"/optimizations/{optimization.pk}/"

    # when the trials are sorted by value, then the best comes first and values descend
    rows = tags(find(html(trader_client.get(url, {"order": "value"})), id="trials-table"), "tr")
    numbers = [int(dict(row.attributes)["data-trial"]) for row in rows[1:]]
    values = dict(
        OptimizationTrial.objects.filter(optimization=optimization).values_list("number", "value")
    )
    ranked = [values[n] for n in numbers if values[n] is not None]
    assert numbers[0] == optimization.best_trial
    assert ranked == sorted(ranked, reverse=True)
    # when only the skipped ones are shown, then each says why
    page = html(trader_client.get(url, {"state": "pruned"}))
    skipped = tags(find(page, id="trials-table"), "tr")[1:]
    assert len(skipped) == optimization.pruned_count
    for row in skipped:
        assert "The strategy rejects these parameters" in text(find(row, class_="trial-error"))

    # when the best trial is opened as a backtest, twice
    action = f"{url}trials/{optimization.best_trial}/backtest/"
    first = trader_client.post(action)
    second = trader_client.post(action)

    # then one backtest of its parameters over the same period is queued, and opened again
    backtest = Backtest.objects.get()
    assert backtest.params == {**optimization.best_params, "allow_short": False}
    assert (backtest.start, backtest.end) == (optimization.start, optimization.end)
    assert first["Location"] == second["Location"] == f"/backtests/{backtest.pk}/"
    # and the page links to it instead of offering a new one
    assert text(find(html(trader_client.get(url)), id="best-backtest")) == (
        f"Its backtest #{backtest.pk}"
    )
    # and a skipped trial has no backtest to open
    pruned = OptimizationTrial.objects.filter(optimization=optimization, state="pruned").first()
    assert pruned is not None
    assert trader_client.post(f"{url}trials/{pruned.number}/backtest/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_several_objectives_show_their_pareto_front(trader_client, user, sample_candles):
    optimization = make_optimization(
        user, sample_candles, objective=["sharpe", "max_drawdown"], trials=10
    )

    page = html(trader_client.get(f"/optimizations/{optimization.pk}/"))

    front = tags(find(page, id="optimization-pareto"), "tr")[1:]
    assert sorted(int(dict(row.attributes)["data-trial"]) for row in front) == optimization.pareto
    header = [text(th) for th in tags(find(page, id="optimization-pareto"), "th")]
    assert header[-3:] == ["Sharpe ratio", "Max drawdown", "Trades"]


@pytest.mark.django_db
def test_an_active_optimization_shows_its_progress_listed_and_cancels_from_its_page(
    trader_client, user, sample_candles
):
    optimization = create_optimization(user, sample_candles)
    url = f"/optimizations/{optimization.pk}/"

    progress = find(html(trader_client.get(url)), id="optimization-progress")
    counts = find(progress, id="optimization-counts")
    assert dict(progress.attributes)["data-reload-on-finish"] == f"optimization:{optimization.pk}"
    assert (dict(counts.attributes)["data-finished"], dict(counts.attributes)["data-total"]) == (
        "0",
        "12",
    )
    row = find(html(trader_client.get("/optimizations/")), id=f"optimization-{optimization.pk}")
    assert text(find(row, **{"data-role": "trials"})) == "0 / 12"
    status = find(row, class_="run-status")
    assert (dict(status.attributes)["data-run-kind"], dict(status.attributes)["data-status"]) == (
        "optimization",
        "queued",
    )

    response = trader_client.post(f"{url}cancel/", follow=True)

    optimization.refresh_from_db()
    assert optimization.status == RunStatus.CANCELLED
    assert f"Optimisation #{optimization.pk} cancelled." in text(html(response))
    again = trader_client.post(f"{url}cancel/", follow=True)
    assert "had already finished (cancelled)" in text(html(again))


@pytest.mark.django_db
def test_run_again_and_delete(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    optimization = create_optimization(user, sample_candles, trials=7)

    with django_capture_on_commit_callbacks(execute=False):
        rerun = trader_client.post(f"/optimizations/{optimization.pk}/rerun/")
    copy = Optimization.objects.exclude(pk=optimization.pk).get()
    deleted = trader_client.post(f"/optimizations/{optimization.pk}/delete/")

    assert rerun["Location"] == f"/optimizations/{copy.pk}/"
    assert (copy.space, copy.trial_count, copy.seed) == (optimization.space, 7, 7)
    assert deleted["Location"] == "/optimizations/"
    assert list(Optimization.objects.all()) == [copy]


@pytest.mark.django_db
def test_another_traders_optimization_is_a_404_everywhere_and_stays_untouched(
    trader_client, sample_candles
):
    # given another trader's queued optimisation
    theirs = create_optimization(UserFactory(), sample_candles)
    url = f"/optimizations/{theirs.pk}/"

    # when the trader opens it or acts on it, then every answer is a 404
    for method, path in [
        ("get", url),
        ("post", f"{url}cancel/"),
        ("post", f"{url}rerun/"),
        ("post", f"{url}delete/"),
        ("post", f"{url}trials/0/backtest/"),
    ]:
        assert getattr(trader_client, method)(path).status_code == 404, path
    # and it is not listed, nor changed
    assert (
        find_all(html(trader_client.get("/optimizations/")), id=f"optimization-{theirs.pk}") == []
    )
    theirs.refresh_from_db()
    assert theirs.status == RunStatus.QUEUED
    assert Optimization.objects.count() == 1
