"""A finished backtest's report on its page: monthly returns and their calendar, the exit-reason,
duration and weekday tables, the highlights, the strategy's indicators in the chart's data and
the download links; figures checked against the stored trades (Django test client, real DB)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from django.template.defaultfilters import floatformat

from backtests.models import BacktestTrade
from backtests.montecarlo import returns_on_equity, trade_monte_carlo
from markets.models import Candle
from strategies.indicators import sma
from tests.backtests.test_pages import (
    chart_data,
    find,
    find_all,
    html,
    make_backtest,
    percent,
    tags,
    text,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader_client(client, user):  # type: ignore[no-untyped-def]
    client.force_login(user)
    return client


def cells(row) -> list[str]:  # type: ignore[no-untyped-def]
    return [text(cell) for cell in tags(row, "td")]


def test_the_page_shows_the_monthly_returns_and_the_exit_reason_table(
    trader_client,
    user,
    sample_candles,
):
    # given a finished backtest with a stop-loss, so that trades exit for several reasons
    backtest = make_backtest(user, sample_candles, stop_loss=Decimal("0.004"))
    trades = list(BacktestTrade.objects.filter(backtest=backtest))
    assert len({trade.exit_reason for trade in trades}) >= 2

    # when its page is opened
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))

    # then the sample's one month (January 2023) has every trade, and the total return
    (month,) = tags(find(page, id="month-table"), "tr")[1:]
    total = sum(trade.pnl for trade in trades)
    assert cells(month) == [
        "2023-01",
        str(len(trades)),
        percent(sum(t.pnl > 0 for t in trades) / len(trades)),
        f"{total:.2f}",
        percent(backtest.metrics["total_return"]),
    ]
    # and the calendar shows it in January's cell, coloured as a gain or a loss
    cell = find(find(page, id="month-calendar"), **{"data-month": "2023-01"})
    assert text(cell) == percent(backtest.metrics["total_return"])
    assert ("loss" if total < 0 else "gain") in dict(cell.attributes)["class"].split()
    # and the exit-reason table counts each reason, most frequent first, with its average profit
    rows = {
        dict(row.attributes)["data-reason"]: cells(row)
        for row in tags(find(page, id="exit-reason-table"), "tr")[1:]
    }
    by_reason = Counter(trade.exit_reason for trade in trades)
    assert {reason: int(row[1]) for reason, row in rows.items()} == dict(by_reason)
    assert list(rows) == [reason for reason, _ in by_reason.most_common()]
    stops = [trade for trade in trades if trade.exit_reason == "stop_loss"]
    assert rows["stop_loss"][0] == "Stop Loss"
    assert rows["stop_loss"][3] == f"{sum(t.pnl for t in stops) / len(stops):.2f}"
    # and the durations, the streaks and the fees are there
    durations = cells(find(page, **{"data-durations": "all"}))
    assert durations[0] == str(len(trades))
    fees = find(page, **{"data-report": "fees"})
    assert text(tags(fees, "dd")[0]) == f"{sum(t.fee for t in trades):.2f}"
    # and the page links to both downloads
    links = [dict(a.attributes)["href"] for a in tags(find(page, id="backtest-export"), "a")]
    assert links == [
        f"/api/backtests/{backtest.pk}/export?format=csv",
        f"/api/backtests/{backtest.pk}/export?format=json",
    ]


def test_weekdays_are_counted_in_the_traders_time_zone(
    trader_client,
    user,
    sample_candles,
):
    # given a trader in Tokyo (UTC+9) and a finished backtest
    user.time_zone = "Asia/Tokyo"
    user.save(update_fields=["time_zone"])
    backtest = make_backtest(user, sample_candles)
    tokyo = ZoneInfo("Asia/Tokyo")
    exits = BacktestTrade.objects.filter(backtest=backtest).values_list("exit_time", flat=True)
    by_day = Counter(
        datetime.fromtimestamp(t / 1000, tz=UTC).astimezone(tokyo).weekday() for t in exits
    )
    by_utc_day = Counter(datetime.fromtimestamp(t / 1000, tz=UTC).weekday() for t in exits)
    assert by_day != by_utc_day  # so the test tells the two apart

    # when
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))

    # then each weekday row counts the trades closed on that day in Tokyo
    rows = tags(find(page, id="weekday-table"), "tr")[1:]
    assert [int(cells(row)[1]) for row in rows] == [by_day.get(day, 0) for day in range(7)]
    assert "Asia/Tokyo" in text(find(page, id="backtest-breakdown"))


def test_the_chart_data_carries_the_strategys_indicators_on_the_bars(
    trader_client,
    user,
    sample_candles,
):
    # given a finished MA Cross 10/30 backtest over 4,000 candles (bars of 4 candles)
    backtest = make_backtest(user, sample_candles)

    # when
    data = chart_data(html(trader_client.get(f"/backtests/{backtest.pk}/")))

    # then its two averages are on the price pane, on the bars' times
    plots = {plot["key"]: plot for plot in data["indicators"]}
    assert list(plots) == ["fast", "slow"]
    assert {plot["pane"] for plot in plots.values()} == {"price"}
    bar_times = {bar[0] for bar in data["candles"]}
    assert {time for time, _ in plots["slow"]["data"]} <= bar_times
    # and each bar's value is the slow average at its last candle, at the market's 2 decimals
    closes = pd.Series(
        [float(c) for c in Candle.objects.order_by("open_time").values_list("close", flat=True)]
    )
    slow = sma(closes, 30)
    assert plots["slow"]["data"][-1] == [data["candles"][-1][0], round(float(slow.iloc[-1]), 2)]
    # the first bar with a value is the one holding candle 29, the first defined (bar 7)
    assert plots["slow"]["data"][0] == [data["candles"][7][0], round(float(slow.iloc[31]), 2)]


def test_a_lower_pane_strategy_sends_its_oscillator_and_levels(
    trader_client,
    user,
    sample_candles,
):
    backtest = make_backtest(
        user, sample_candles, strategy="rsi_reversion", params={"lower": 25.0, "upper": 75.0}
    )
    data = chart_data(html(trader_client.get(f"/backtests/{backtest.pk}/")))
    plots = {plot["key"]: plot for plot in data["indicators"]}
    assert {plot["pane"] for plot in plots.values()} == {"lower"}
    assert [value for _, value in plots["lower"]["data"]] == [25.0, 25.0]
    assert all(0 <= value <= 100 for _, value in plots["rsi"]["data"])
    # and the report's sections are there for it too
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))
    assert find_all(page, id="month-calendar")


def test_a_backtest_without_trades_shows_an_empty_report(
    trader_client,
    user,
    sample_candles,
):
    # given an RSI strategy whose entry level the sample never reaches
    backtest = make_backtest(
        user, sample_candles, strategy="rsi_reversion", params={"lower": 1.0, "exit_level": 50.0}
    )
    assert backtest.trade_count == 0

    # when
    response = trader_client.get(f"/backtests/{backtest.pk}/")

    # then the month is there, flat, and the tables say there is nothing
    assert response.status_code == 200
    page = html(response)
    (month,) = tags(find(page, id="month-table"), "tr")[1:]
    assert cells(month) == ["2023-01", "0", "—", "0.00", "0.00 %"]
    assert "flat" in dict(find(page, **{"data-month": "2023-01"}).attributes)["class"].split()
    assert text(find(page, id="exit-reason-table")).endswith("No trade.")
    assert cells(find(page, **{"data-durations": "all"}))[1] == "—"
    assert text(tags(find(page, **{"data-report": "best"}), "dd")[0]) == "—"


def test_the_best_trade_shows_when_it_closed_in_the_traders_time_zone(
    trader_client,
    user,
    sample_candles,
):
    # given a trader in New York (UTC-5 in January) and a finished backtest
    user.time_zone = "America/New_York"
    user.save(update_fields=["time_zone"])
    backtest = make_backtest(user, sample_candles)
    best = max(
        BacktestTrade.objects.filter(backtest=backtest).order_by("seq"),
        key=lambda trade: trade.return_rate,
    )
    closed = datetime.fromtimestamp(best.exit_time / 1000, tz=UTC)

    # when
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))

    # then
    shown = text(find(page, **{"data-report": "best"}))
    assert f"#{best.seq + 1}" in shown
    local = closed.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M")
    assert shown.endswith(f"closed {local}")
    assert local != closed.strftime("%Y-%m-%d %H:%M")


def test_a_perp_backtests_report_has_its_funding_and_liquidations(
    trader_client,
    user,
    perp_candles,
):
    # given MA Cross long and short at leverage 50 on the perp sample (funding, liquidations)
    backtest = make_backtest(
        user,
        perp_candles,
        params={"fast": 10, "slow": 30, "ma": "sma", "allow_short": True},
        leverage=50,
    )
    trades = list(BacktestTrade.objects.filter(backtest=backtest))

    # when
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))

    # then the funding received is the trades' own, and liquidations are an exit reason
    funding = find(page, **{"data-report": "funding"})
    assert text(tags(funding, "dd")[0]) == floatformat(sum(t.funding for t in trades), 2)
    assert any(t.funding != 0 for t in trades)
    liquidated = sum(t.exit_reason == "liquidation" for t in trades)
    assert liquidated > 0
    row = find(page, **{"data-reason": "liquidation"})
    assert cells(row)[:3] == ["Liquidation", str(liquidated), "0.00 %"]


def test_the_monte_carlo_band_shows_the_reshuffled_and_resampled_trades(
    trader_client,
    user,
    sample_candles,
):
    # given a finished backtest and the Monte Carlo of its stored trades, in order
    backtest = make_backtest(user, sample_candles)
    pnls = list(
        BacktestTrade.objects.filter(backtest=backtest)
        .order_by("seq")
        .values_list("pnl", flat=True)
    )
    assert len(pnls) >= 2
    returns = returns_on_equity([float(p) for p in pnls], initial_cash=float(backtest.initial_cash))
    expected = trade_monte_carlo(returns, initial_cash=float(backtest.initial_cash))

    # when
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))

    # then
    section = find(page, id="backtest-monte-carlo")
    assert text(tags(section, "h2")[0]) == "Monte Carlo (1,000 reshuffles)"
    rows = {
        dict(row.attributes)["data-monte-carlo"]: cells(row)
        for row in tags(find(section, id="monte-carlo-table"), "tr")[1:]
    }
    shuffled = expected.shuffled_max_drawdown
    assert rows["shuffled_max_drawdown"] == [
        percent(expected.original_max_drawdown),
        *(percent(value) for value in (shuffled.p5, shuffled.p50, shuffled.p95)),
    ]
    final = expected.resampled_final_equity
    assert rows["resampled_final_equity"] == [
        f"{backtest.metrics['final_equity']:.2f}",
        *(f"{value:.2f}" for value in (final.p5, final.p50, final.p95)),
    ]
    assert shuffled.p5 <= shuffled.p50 <= shuffled.p95 <= 0


def test_a_backtest_with_fewer_than_two_trades_has_no_monte_carlo(
    trader_client,
    user,
    sample_candles,
):
    backtest = make_backtest(
        user, sample_candles, strategy="rsi_reversion", params={"lower": 1.0, "exit_level": 50.0}
    )
    page = html(trader_client.get(f"/backtests/{backtest.pk}/"))
    assert not find_all(page, id="backtest-monte-carlo")
