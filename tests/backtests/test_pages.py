"""The backtest, sweep and schedule pages, through the Django test client on the real database.

Runs are created by the services (or the pages' forms) and run in the test process with the
tasks' bodies; the on-commit sends to the broker never happen inside a test's transaction.
Pages are parsed with Django's own test HTML parser, so assertions name elements, not strings
that could appear anywhere.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from django.test.html import Element, parse_html
from django_celery_beat.models import PeriodicTask

from backtests import services
from backtests.models import Backtest, BacktestSchedule, RunStatus, Sweep
from backtests.views import TRADES_PAGE_SIZE
from markets.models import Candle
from tests.backtests.conftest import SampleMarket
from tests.backtests.run_helpers import (
    create_backtest,
    create_schedule,
    create_sweep,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


# --- helpers ------------------------------------------------------------------------------------


def html(response: Any) -> Element:
    return parse_html(response.content.decode())


def _children(element: Element) -> list[Any]:
    return list(element.children)


def find_all(root: Element, class_: str | None = None, **attributes: str) -> list[Element]:
    """Elements under ``root`` whose attributes include ``attributes`` and, if given, the class
    ``class_``."""
    found: list[Element] = []
    for child in _children(root):
        if not isinstance(child, Element):
            continue
        own = dict(child.attributes)
        classes = (own.get("class") or "").split()
        if all(own.get(name) == value for name, value in attributes.items()) and (
            class_ is None or class_ in classes
        ):
            found.append(child)
        found.extend(find_all(child, class_, **attributes))
    return found


def find(root: Element, class_: str | None = None, **attributes: str) -> Element:
    found = find_all(root, class_, **attributes)
    assert found, f"no element with {class_=} {attributes}"
    return found[0]


def tags(root: Element, name: str) -> list[Element]:
    found: list[Element] = []
    for child in _children(root):
        if isinstance(child, Element):
            if child.name == name:
                found.append(child)
            found.extend(tags(child, name))
    return found


def text(element: Element) -> str:
    parts = [child if isinstance(child, str) else text(child) for child in _children(element)]
    return " ".join(" ".join(parts).split())


def field_errors(page: Element, field: str) -> list[str]:
    return [text(p) for p in find_all(find(page, id=f"field-{field}"), class_="field-error")]


def percent(fraction: float) -> str:
    return f"{fraction * 100:.2f} %"


def chart_data(page: Element) -> dict[str, Any]:
    script = find(page, id="backtest-chart-data")
    loaded: dict[str, Any] = json.loads("".join(str(c) for c in _children(script)))
    return loaded


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def trader_client(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def make_backtest(user: Any, market: SampleMarket, *, run: bool = True, **overrides: Any) -> Any:
    backtest = create_backtest(user, market, **overrides)
    if run:
        assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.DONE
    backtest.refresh_from_db()
    return backtest


def make_sweep(user: Any, market: SampleMarket, *, run: bool = True, **overrides: Any) -> Sweep:
    fields = {"grid": {"fast": [5, 10], "slow": [20, 30, 40]}, "rank_by": "total_return"}
    sweep = create_sweep(user, market, params={}, **(fields | overrides))
    if run:
        for run_id in sweep.runs.order_by("seq").values_list("pk", flat=True):
            services.sweep_run_execute(run_id=run_id, worker="test")
        services.sweep_finish(sweep_id=sweep.pk)
    sweep.refresh_from_db()
    return sweep


def make_schedule(user: Any, market: SampleMarket, **overrides: Any) -> BacktestSchedule:
    return create_schedule(user, market, **({"lookback_days": 30} | overrides))


def backtest_form(market: SampleMarket, **overrides: Any) -> dict[str, Any]:
    """A valid new-backtest form as a browser posts it (datetime-local values, in UTC here)."""
    return {
        "strategy": "ma_cross",
        "exchange": market.exchange,
        "symbol": market.symbol,
        "timeframe": market.timeframe,
        "start": market.start.strftime("%Y-%m-%dT%H:%M"),
        "end": market.end.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "initial_cash": "10000",
        "fee_rate": "0.001",
        "slippage_bps": "0",
        "position_size": "1",
        "stop_loss": "",
        "take_profit": "",
        "param_fast": "12",
        "param_slow": "40",
        "param_ma": "ema",
        **overrides,
    }


# --- login and ownership ------------------------------------------------------------------------

PAGES = [
    "/backtests/",
    "/backtests/new/",
    "/backtests/1/",
    "/sweeps/",
    "/sweeps/new/",
    "/sweeps/1/",
    "/schedules/",
    "/schedules/new/",
    "/schedules/1/",
]


@pytest.mark.parametrize("path", PAGES)
def test_it_sends_anonymous_visitors_to_the_login_page(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


def test_every_page_renders_for_its_owner(trader_client, user, sample_candles):
    # given a finished backtest, a finished sweep and a schedule of the trader's
    backtest = make_backtest(user, sample_candles)
    sweep = make_sweep(user, sample_candles)
    schedule = make_schedule(user, sample_candles)

    # when each page is opened, then it renders and names its object
    for path, expected in [
        ("/backtests/", f"#{backtest.pk}"),
        ("/backtests/new/", "New backtest"),
        (f"/backtests/{backtest.pk}/", f"Backtest #{backtest.pk}"),
        ("/sweeps/", f"#{sweep.pk}"),
        ("/sweeps/new/", "New sweep"),
        (f"/sweeps/{sweep.pk}/", f"Sweep #{sweep.pk}"),
        ("/schedules/", "nightly"),
        ("/schedules/new/", "New schedule"),
        (f"/schedules/{schedule.pk}/", "Schedule “nightly”"),
    ]:
        response = trader_client.get(path)
        assert response.status_code == 200, path
        assert expected in text(html(response)), path


def test_another_traders_objects_are_404_and_stay_untouched(trader_client, sample_candles):
    # given another trader's active backtest and sweep and enabled schedule
    other = UserFactory()
    backtest = make_backtest(other, sample_candles, run=False)
    sweep = make_sweep(other, sample_candles, run=False)
    schedule = make_schedule(other, sample_candles)

    # when the trader opens or acts on them, then every answer is a 404
    for method, path in [
        ("get", f"/backtests/{backtest.pk}/"),
        ("post", f"/backtests/{backtest.pk}/cancel/"),
        ("get", f"/sweeps/{sweep.pk}/"),
        ("post", f"/sweeps/{sweep.pk}/cancel/"),
        ("get", f"/schedules/{schedule.pk}/"),
        ("post", f"/schedules/{schedule.pk}/pause/"),
        ("post", f"/schedules/{schedule.pk}/resume/"),
    ]:
        assert getattr(trader_client, method)(path).status_code == 404, path
    # and nothing of theirs changed or is listed
    backtest.refresh_from_db()
    sweep.refresh_from_db()
    schedule.refresh_from_db()
    assert (backtest.status, sweep.status, schedule.enabled) == ("queued", "queued", True)
    assert find_all(html(trader_client.get("/backtests/")), id=f"backtest-{backtest.pk}") == []
    assert find_all(html(trader_client.get("/sweeps/")), id=f"sweep-{sweep.pk}") == []
    assert find_all(html(trader_client.get("/schedules/")), id=f"schedule-{schedule.pk}") == []


def test_empty_lists_say_what_to_do_next(trader_client, strategy_catalogue):
    for path, hint, link in [
        ("/backtests/", "No backtests yet.", "/backtests/new/"),
        ("/sweeps/", "No sweeps yet.", "/sweeps/new/"),
        ("/schedules/", "No schedules yet.", "/schedules/new/"),
    ]:
        page = html(trader_client.get(path))
        empty = find(page, class_="empty-state")
        assert hint in text(empty)
        assert [dict(a.attributes)["href"] for a in tags(empty, "a")] == [link]
    # and a form with no candles stored says how to import some
    form_page = html(trader_client.get("/backtests/new/"))
    assert "import_candles --sample" in text(find(form_page, id="stored-markets"))


# --- the new-backtest form ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/backtests/new/", "/sweeps/new/", "/schedules/new/"])
def test_the_forms_offer_every_strategy_but_the_one_trading_on_signals(
    trader_client, sample_candles, path
):
    page = html(trader_client.get(path))
    offered = {dict(o.attributes)["value"] for o in tags(find(page, id="id_strategy"), "option")}
    assert {"ma_cross", "macd", "rsi_reversion", "bollinger_breakout"} <= offered
    assert "signals" not in offered


def test_the_form_shows_the_strategys_parameters_with_bounds_and_help(
    trader_client, sample_candles
):
    page = html(trader_client.get("/backtests/new/?strategy=ma_cross"))

    fast = find(page, id="id_param_fast")
    assert (dict(fast.attributes)["min"], dict(fast.attributes)["max"]) == ("2", "500")
    assert dict(fast.attributes)["value"] == "10"
    help_text = text(find(find(page, id="field-param_fast"), class_="help"))
    assert help_text == "Fast moving-average length, in candles (an integer between 2 and 500)"
    options = [text(o) for o in tags(find(page, id="id_param_ma"), "option")]
    assert options == ["sma", "ema"]
    # and the period defaults to the stored candles of the sample market
    assert dict(find(page, id="id_symbol").attributes)["value"] == "BTC/USDT"


def test_a_valid_form_creates_a_queued_backtest_and_sends_its_run(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    # when the trader posts a valid form
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = trader_client.post("/backtests/new/", backtest_form(sample_candles))

    # then one backtest is stored with exactly what was asked, and its run is sent on commit
    backtest = Backtest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/backtests/{backtest.pk}/"
    assert backtest.user == user
    assert backtest.status == RunStatus.QUEUED
    assert backtest.params == {"fast": 12, "slow": 40, "ma": "ema", "allow_short": False}
    assert (backtest.initial_cash, backtest.fee_rate) == (Decimal(10000), Decimal("0.001"))
    assert (backtest.stop_loss, backtest.take_profit) == (None, None)
    assert (backtest.start, backtest.candle_count) == (sample_candles.start, sample_candles.count)
    assert len(callbacks) == 2  # the "queued" event, then the task
    # and its page shows it queued, with a progress bar that reloads it when it finishes
    page = html(trader_client.get(response["Location"]))
    progress = find(page, id="backtest-progress")
    assert dict(progress.attributes)["data-reload-on-finish"] == f"backtest:{backtest.pk}"
    bar = tags(progress, "progress")[0]
    assert dict(bar.attributes)["value"] == "0.0000"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"param_fast": "1"},
            "param_fast",
            "fast must be an integer between 2 and 500, got 1",
        ),
        ({"param_fast": "50", "param_slow": "40"}, "param_slow", "slow must be greater"),
        ({"param_fast": "ten"}, "param_fast", "fast must be an integer between 2 and 500."),
        ({"symbol": "NOPE/USDT"}, "symbol", "Unknown symbol on bitget."),
        ({"start": "2023-02-01T00:00", "end": "2023-01-01T00:00"}, "end", "must be after start"),
        ({"fee_rate": "0.5"}, "fee_rate", "Ensure this value is less than or equal to 0.1."),
        ({"initial_cash": ""}, "initial_cash", "This field is required."),
        (
            {"stop_loss": "150"},
            "stop_loss",
            "Ensure this value is less than or equal to 99.999999.",
        ),
        ({"strategy": "moon"}, "strategy", "Select a valid choice. moon is not one of"),
    ],
)
def test_a_refused_form_answers_400_with_the_message_next_to_its_field(
    trader_client, sample_candles, overrides, field, message
):
    # when the trader posts a form with one bad value
    response = trader_client.post("/backtests/new/", backtest_form(sample_candles, **overrides))

    # then the form comes back with the message next to that field, and nothing is stored
    assert response.status_code == 400
    errors = field_errors(html(response), field)
    assert any(error.startswith(message) for error in errors), errors
    assert not Backtest.objects.exists()
    # and what was typed is kept
    page = html(response)
    assert dict(find(page, id="id_symbol").attributes)["value"] == overrides.get(
        "symbol", "BTC/USDT"
    )


def test_a_period_without_candles_is_refused_with_the_services_explanation(
    trader_client, sample_candles
):
    form = backtest_form(sample_candles, start="2020-01-01T00:00", end="2020-02-01T00:00")

    response = trader_client.post("/backtests/new/", form)

    assert response.status_code == 400
    page = html(response)
    assert field_errors(page, "start") == ["no candles in the period"]
    assert "Pick another period or import candles first." in text(find(page, id="form-errors"))
    assert not Backtest.objects.exists()


def test_switching_strategy_reloads_the_form_with_its_parameters_and_creates_nothing(
    trader_client, sample_candles
):
    form = backtest_form(sample_candles, strategy="bollinger_breakout", symbol="ETH/USDT")

    response = trader_client.post("/backtests/new/", {**form, "switch_strategy": "1"})

    assert response.status_code == 200
    page = html(response)
    names = [dict(i.attributes)["name"] for i in find_all(find(page, id="params"), type="number")]
    assert names == ["param_period", "param_k"]
    assert find_all(page, id="id_param_fast") == []
    assert dict(find(page, id="id_symbol").attributes)["value"] == "ETH/USDT"
    assert find_all(page, class_="field-error") == []
    assert not Backtest.objects.exists()


# --- a backtest's page --------------------------------------------------------------------------


def max_drawdown_by_hand(values: list[float]) -> float:
    peak, deepest = values[0], 0.0
    for value in values:
        peak = max(peak, value)
        deepest = min(deepest, value / peak - 1)
    return deepest


def test_a_finished_backtest_shows_its_metrics_trades_and_buy_and_hold(
    trader_client, user, sample_candles
):
    # given a finished backtest of the sample
    backtest = make_backtest(user, sample_candles)
    metrics = backtest.metrics
    closes = [
        float(c) for c in Candle.objects.order_by("open_time").values_list("close", flat=True)
    ]

    # when its page is opened
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))

    # then the metrics are shown with 2 decimals
    metric = {
        dict(div.attributes)["data-metric"]: text(tags(div, "dd")[0])
        for div in find_all(page, class_="metric")
    }
    assert metric["total_return"] == percent(metrics["total_return"])
    assert metric["final_equity"] == f"{metrics['final_equity']:.2f}"
    assert metric["trade_count"] == str(backtest.trade_count)
    assert metric["sharpe"] == f"{metrics['sharpe']:.2f}"
    # and the comparison with buying and holding over the same candles, computed here by hand
    hold_return = closes[-1] / closes[0] - 1
    comparison = {
        row: [text(td) for td in tags(find(page, id=f"comparison-{row}"), "td")]
        for row in ("return", "drawdown", "equity")
    }
    assert comparison["return"] == [percent(metrics["total_return"]), percent(hold_return)]
    assert comparison["drawdown"] == [
        percent(metrics["max_drawdown"]),
        percent(max_drawdown_by_hand(closes)),
    ]
    assert comparison["equity"] == [
        f"{metrics['final_equity']:.2f}",
        f"{10000 * (1 + hold_return):.2f}",
    ]
    # and every trade, in order, prices at the market's precision (0.01 for BTC/USDT)
    rows = tags(find(page, id="backtest-trades"), "tr")[1:]
    assert len(rows) == min(backtest.trade_count, TRADES_PAGE_SIZE)
    first = backtest.trades.order_by("seq").first()
    cells = [text(td) for td in tags(rows[0], "td")]
    assert cells[0] == "1"
    assert cells[3] == f"{first.entry_price:.2f}"
    assert cells[8] == f"{first.pnl:.2f}"
    assert cells[10] == first.get_exit_reason_display()


def test_the_charts_data_is_bounded_and_merges_candles_into_bars(
    trader_client, user, sample_candles
):
    # given a finished backtest over 4,000 candles
    backtest = make_backtest(user, sample_candles)

    # when its page is opened
    data = chart_data(html(trader_client.get(f"/backtests/{backtest.pk}/")))

    # then at most 1,000 bars are embedded: here 4 candles of 5 minutes each
    candles = list(
        Candle.objects.order_by("open_time").values_list("open", "high", "low", "close", "volume")
    )
    assert len(data["candles"]) == math.ceil(len(candles) / 4) == 1000
    first_bar = data["candles"][0]
    assert first_bar[0] == sample_candles.start.timestamp() * 1000
    assert first_bar[1:5] == [
        float(candles[0][0]),
        float(max(c[1] for c in candles[:4])),
        float(min(c[2] for c in candles[:4])),
        float(candles[3][3]),
    ]
    # and each bar carries the volume of its four candles
    assert first_bar[5] == pytest.approx(float(sum(c[4] for c in candles[:4])))
    assert data["firstClose"] == float(candles[0][3])
    # and each trade's entry and exit are counted in a marker on a bar's time, in time order
    bar_times = {bar[0] for bar in data["candles"]}
    assert sum(m["count"] for m in data["markers"]) == 2 * backtest.trade_count
    assert {m["time"] for m in data["markers"]} <= bar_times
    assert [m["time"] for m in data["markers"]] == sorted(m["time"] for m in data["markers"])
    # and the equity curve is thinned, with its drawdown never above zero
    assert 2 <= len(data["equity"]) <= 1000
    assert data["equity"][-1][1] == round(backtest.metrics["final_equity"], 2)
    assert len(data["drawdown"]) == len(data["equity"])
    assert max(point[1] for point in data["drawdown"]) <= 0
    assert data["priceDecimals"] == 2


def test_a_busy_backtest_pages_its_trades_and_marks_every_trade_grouped_per_bar(
    trader_client, user, sample_candles
):
    # given a backtest that trades on almost every crossing of two very short averages
    backtest = make_backtest(user, sample_candles, params={"fast": 2, "slow": 3})
    assert backtest.trade_count > 500

    # when the second page of its trades is opened
    page = html(trader_client.get(f"/backtests/{backtest.pk}/?page=2"))

    # then it lists trades 101 to 200
    rows = tags(find(page, id="backtest-trades"), "tr")[1:]
    assert [text(tags(row, "td")[0]) for row in rows] == [str(n) for n in range(101, 201)]
    assert "Page 2 of" in text(find(page, class_="pagination"))
    # and the chart counts every trade in markers grouped per bar: fewer markers than trades
    data = chart_data(page)
    markers = data["markers"]
    assert sum(m["count"] for m in markers) == 2 * backtest.trade_count
    assert len(markers) < 2 * backtest.trade_count
    assert max(m["count"] for m in markers) > 1
    assert len({(m["time"], m["kind"], m["side"], m.get("won")) for m in markers}) == len(markers)


def test_a_failed_backtest_shows_its_error(trader_client, user, sample_candles):
    backtest = make_backtest(user, sample_candles, run=False)
    Backtest.objects.filter(pk=backtest.pk).update(
        status=RunStatus.FAILED, error="The candles of this period are no longer stored."
    )

    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))

    assert "The candles of this period are no longer stored." in text(
        find(page, id="backtest-error")
    )
    assert find_all(page, id="backtest-chart-data") == []


def test_cancelling_a_queued_backtest_from_its_page(trader_client, user, sample_candles):
    backtest = make_backtest(user, sample_candles, run=False)

    response = trader_client.post(f"/backtests/{backtest.pk}/cancel/")

    assert response.status_code == 302
    backtest.refresh_from_db()
    assert backtest.status == RunStatus.CANCELLED


# --- sweeps -------------------------------------------------------------------------------------


def test_a_finished_sweeps_heat_map_colours_each_combination_by_the_metric(
    trader_client, user, sample_candles
):
    # given a finished sweep over fast × slow, ranked by total return
    sweep = make_sweep(user, sample_candles)
    returns = {
        (run.params["fast"], run.params["slow"]): run.metrics["total_return"]
        for run in sweep.runs.all()
    }
    reach = max(abs(value) for value in returns.values())

    # when its page is opened
    page = html(trader_client.get(f"/sweeps/{sweep.pk}/"))

    # then the heat map has fast as columns and slow as rows by default, one cell per combination
    heat_map = find(page, id="heat-map")
    assert (dict(heat_map.attributes)["data-x"], dict(heat_map.attributes)["data-y"]) == (
        "fast",
        "slow",
    )
    body_rows = tags(tags(heat_map, "tbody")[0], "tr")
    assert [text(tags(row, "th")[0]) for row in body_rows] == ["20", "30", "40"]
    for row, slow in zip(body_rows, (20, 30, 40), strict=True):
        cells = tags(row, "td")
        assert [text(cell) for cell in cells] == [
            percent(returns[(fast, slow)]) for fast in (5, 10)
        ]
        for cell, fast in zip(cells, (5, 10), strict=True):
            # the scale is centred on zero: the sign is the colour, the size its strength
            value = returns[(fast, slow)]
            tone = "gain" if value > 0 else "loss" if value < 0 else "even"
            attributes = dict(cell.attributes)
            assert attributes["class"] == f"heat heat-{tone}"
            # static/js/page.js sets --shade from it (no inline style: the CSP)
            assert attributes["data-shade"] == f"{abs(value) / reach:.3f}"
    # and the ranking lists the combinations best first
    ranking = tags(tags(find(page, id="sweep-ranking"), "tbody")[0], "tr")
    ranked = [percent(r) for r in sorted(returns.values(), reverse=True)]
    assert [text(tags(row, "td")[3]) for row in ranking] == ranked


def test_the_heat_maps_axes_are_picked_in_the_query_string(trader_client, user, sample_candles):
    sweep = make_sweep(user, sample_candles)

    page = html(trader_client.get(f"/sweeps/{sweep.pk}/?x=slow&y=fast"))

    heat_map = find(page, id="heat-map")
    assert (dict(heat_map.attributes)["data-x"], dict(heat_map.attributes)["data-y"]) == (
        "slow",
        "fast",
    )
    header = [text(th) for th in tags(tags(heat_map, "thead")[0], "th")[1:]]
    assert header == ["20", "30", "40"]


def test_the_sweep_form_reads_lists_and_ranges_into_the_grid(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    form = {
        **backtest_form(sample_candles),
        "param_fast": "5, 10",
        "param_slow": "20:40:10",
        "param_ma": "ema",
        "rank_by": "sharpe",
    }

    with django_capture_on_commit_callbacks(execute=False):
        response = trader_client.post("/sweeps/new/", form)

    sweep = Sweep.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/sweeps/{sweep.pk}/"
    assert sweep.grid == {"fast": [5, 10], "slow": [20, 30, 40]}
    assert sweep.params == {"ma": "ema"}
    assert (sweep.rank_by, sweep.combination_count, sweep.user) == ("sharpe", 6, user)


@pytest.mark.parametrize(
    ("grid", "field", "message"),
    [
        ({"param_fast": "5", "param_slow": "30"}, None, "Give several values"),
        ({"param_fast": "5, x"}, "param_fast", "Each value must be an integer between 2 and 500;"),
        ({"param_slow": "20:40"}, "param_slow", "Write a range as start:stop:step"),
        # a range written with a dash: the error shows the accepted syntax with its numbers
        (
            {"param_slow": "5-15"},
            "param_slow",
            "Each value must be an integer between 3 and 2000; got 5-15. Write one value, a list "
            "such as 5, 10, 20, or a range as start:stop:step, e.g. 5:15:1.",
        ),
        (
            {"param_ma": "sma..ema"},
            "param_ma",
            'Each value must be one of "sma", "ema"; got sma..ema. Write one value or several',
        ),
        ({"param_fast": "1, 5"}, "param_fast", "1: expected an integer between 2 and 500"),
    ],
)
def test_a_bad_grid_is_refused_next_to_its_field(
    trader_client, sample_candles, grid, field, message
):
    form = {**backtest_form(sample_candles), "param_fast": "5, 10", "rank_by": "sharpe", **grid}

    response = trader_client.post("/sweeps/new/", form)

    assert response.status_code == 400
    page = html(response)
    errors = (
        field_errors(page, field)
        if field
        else [text(p) for p in tags(find(page, id="form-errors"), "p")]
    )
    assert any(error.startswith(message) for error in errors), errors
    assert not Sweep.objects.exists()


# --- schedules ----------------------------------------------------------------------------------


def test_pausing_and_resuming_a_schedule_moves_its_beat_task_too(
    trader_client, user, sample_candles
):
    schedule = make_schedule(user, sample_candles)

    paused = trader_client.post(f"/schedules/{schedule.pk}/pause/")

    schedule.refresh_from_db()
    assert paused.status_code == 302
    assert paused["Location"] == "/schedules/"
    assert not schedule.enabled
    assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    row = find(html(trader_client.get("/schedules/")), id=f"schedule-{schedule.pk}")
    assert "Paused" in text(row)
    assert [text(b) for b in tags(row, "button")] == ["Resume"]

    resumed = trader_client.post(f"/schedules/{schedule.pk}/resume/", {"back": "detail"})

    schedule.refresh_from_db()
    assert resumed["Location"] == f"/schedules/{schedule.pk}/"
    assert schedule.enabled
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled


def test_a_schedules_page_lists_the_backtests_it_ran(trader_client, user, sample_candles):
    # given a schedule that fired twice (a run of another schedule is not its history)
    schedule = make_schedule(user, sample_candles, lookback_days=3650)
    other = make_schedule(user, sample_candles, name="other")
    end = sample_candles.end
    ran = [services.schedule_run(schedule_id=schedule.pk, now=end) for _ in range(2)]
    services.schedule_run(schedule_id=other.pk, now=end)

    page = html(trader_client.get(f"/schedules/{schedule.pk}/"))

    history = find(page, id="schedule-history")
    listed = [dict(tr.attributes)["id"] for tr in tags(history, "tr")[1:]]
    assert listed == [f"backtest-{run.pk}" for run in reversed(ran) if run is not None]


def test_the_schedule_form_creates_a_schedule_or_shows_a_bad_cron(
    trader_client, user, sample_candles
):
    form = {
        **backtest_form(sample_candles),
        "name": "weekly",
        "cron": "0 3 * * mon",
        "lookback_days": "14",
        "enabled": "on",
    }

    refused = trader_client.post("/schedules/new/", {**form, "cron": "every day"})

    assert refused.status_code == 400
    assert field_errors(html(refused), "cron") == [
        "give five fields: minute hour day-of-month month day-of-week, e.g. 0 2 * * * (every day "
        "at 02:00 UTC) or 30 4 * * mon (Mondays at 04:30 UTC)"
    ]
    assert not BacktestSchedule.objects.exists()

    created = trader_client.post("/schedules/new/", form)

    schedule = BacktestSchedule.objects.get()
    assert created["Location"] == f"/schedules/{schedule.pk}/"
    assert (schedule.user, schedule.cron, schedule.lookback_days) == (user, "0 3 * * mon", 14)
    assert schedule.params == {"fast": 12, "slow": 40, "ma": "ema", "allow_short": False}
