"""Performance over time: the equity rows a tick writes, ``GET /api/bots/<id>/equity`` and
``GET /api/performance``, the paper accounts' equity samples, and their thinning with age.

The bot is a paper replay on stored candles, ticked for real through the services (a
``ManualClock`` moves its market on a candle at a time); its signal is ``Scripted.target``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from accounts.services import api_token_issue
from bots.models import BotEquity, Position, Trade
from bots.services import accounts_equity_record, bot_stop, bots_tick_batch, equity_compact
from bots.services.equity import thinned_out
from bots.tasks import compact_equity_task, record_account_equity_task
from markets.models import AccountEquity
from tests.bots.bot_helpers import (
    STEP_MS,
    ReplayBot,
    Scripted,
    live_bot,
    paper_account,
    scripted_bot,
    store_candles,
)

pytestmark = pytest.mark.usefixtures("scripted_strategies")

FIRST, COUNT, WARM = 2000, 80, 40


@pytest.fixture
def rows() -> list[Any]:
    return store_candles(FIRST, COUNT)


@pytest.fixture
def runner(user: Any, rows: list[Any]) -> ReplayBot:
    runner = scripted_bot(user, paper_account(user), start_ms=rows[WARM].open_time)
    runner.start()
    return runner


def equity(client: Any, bot_id: int, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/bots/{bot_id}/equity{query}")
    assert response.status_code == 200, response.content
    return response.json()


def performance(client: Any, query: str = "?period=day") -> dict[str, Any]:
    response = client.get(f"/api/performance{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_replay_bots_curve_and_performance_grow_as_it_ticks(auth_client, runner, rows):
    # given: a replay bot that buys on its first candle
    Scripted.target = 1
    runner.tick()
    first = equity(auth_client, runner.bot.pk)
    assert first["clock"] == "replay"
    assert len(first["points"]) == 1
    # stamped at the replayed candle's close, not the wall clock
    assert first["points"][0]["time"] == rows[WARM - 1].open_time + STEP_MS
    assert performance(auth_client)["periods"] == []  # a buy realises nothing

    # when: it holds for three candles, then sells
    for _ in range(3):
        runner.next_candle()
    Scripted.target = 0
    runner.next_candle()

    # then: one point per candle it acted on, each the position as the tick marked it
    curve = equity(auth_client, runner.bot.pk)
    assert len(curve["points"]) == 5
    times = [point["time"] for point in curve["points"]]
    assert times == sorted(times)
    assert times[-1] == rows[WARM + 3].open_time + STEP_MS
    position = Position.objects.get(bot=runner.bot)
    last = curve["points"][-1]
    assert Decimal(last["realised"]) == position.pnl
    assert Decimal(last["equity"]) == position.pnl + position.unrealized_pnl
    equities = [Decimal(point["equity"]) for point in curve["points"]]
    peaks = [max(equities[: i + 1]) for i in range(len(equities))]
    drawdowns = [peak - value for peak, value in zip(peaks, equities, strict=True)]
    assert [Decimal(p["drawdown"]) for p in curve["points"]] == drawdowns
    assert Decimal(curve["max_drawdown"]) == max(drawdowns)
    # and the day of the sale (the replayed day, in the trader's zone) holds the closed trade
    sale = Trade.objects.get(bot=runner.bot, side="sell")
    day = performance(auth_client)
    assert day["period"] == "day"
    [bucket] = day["periods"]
    assert (bucket["trades"], Decimal(bucket["profit"])) == (1, sale.pnl)
    assert bucket["win_rate"] == (1.0 if sale.pnl > 0 else 0.0)
    assert bucket["start"] == _midnight_ms(sale.time, "UTC")
    [line] = day["bots"]
    assert line["id"] == runner.bot.pk
    assert [p["time"] for p in line["equity"]] == times


def test_a_stop_that_closes_the_position_ends_the_curve_on_the_realised_result(auth_client, runner):
    Scripted.target = 1
    runner.tick()
    runner.next_candle()

    bot_stop(bot=runner.refresh(), flatten=True, clock=runner.clock)

    points = equity(auth_client, runner.bot.pk)["points"]
    position = Position.objects.get(bot=runner.bot)
    assert position.qty == 0
    assert len(points) == 2  # the stop's point replaces its candle's
    assert (points[-1]["equity"], points[-1]["unrealised"]) == (
        f"{position.pnl.normalize():f}",
        "0",
    )


def test_the_batchs_held_bots_write_their_point_too(user, runner, rows):
    Scripted.target = 0
    runner.tick()  # the first tick after a start takes the full tick
    runner.clock.advance(runner.seconds_per_candle)

    outcome = bots_tick_batch(bot_ids=[runner.bot.pk], clock=runner.clock)

    assert outcome == {"held": 1}
    times = list(BotEquity.objects.filter(bot=runner.bot).order_by("time").values_list("time"))
    assert [t for (t,) in times] == [_at(rows[WARM - 1].open_time + STEP_MS),
                                     _at(rows[WARM].open_time + STEP_MS)]  # fmt: skip


def test_days_weeks_and_months_are_the_traders_in_their_time_zone(auth_client, user, runner):
    # given: closed trades either side of midnight in Tokyo (15:00 UTC)
    order = runner.bot.orders.create(client_order_id="t-1", symbol=runner.bot.symbol,
                                     side="sell", order_type="market", qty=1, reason="signal",
                                     candle_ms=0)  # fmt: skip
    for hour, pnl in ((14, "5"), (16, "-2"), (17, "4")):
        Trade.objects.create(
            bot=runner.bot,
            order=order,
            symbol=runner.bot.symbol,
            side="sell",
            qty=1,
            price=1,
            pnl=pnl,
            time=datetime(2026, 3, 2, hour, tzinfo=UTC),
        )
    user.time_zone = "Asia/Tokyo"
    user.save(update_fields=["time_zone"])

    days = performance(auth_client, "?period=day")["periods"]
    month = performance(auth_client, "?period=month")["periods"]

    assert [(d["start"], d["trades"], d["profit"], d["wins"]) for d in days] == [
        (_midnight_ms(datetime(2026, 3, 3, tzinfo=UTC), "Asia/Tokyo"), 2, "2", 1),
        (_midnight_ms(datetime(2026, 3, 2, tzinfo=UTC), "Asia/Tokyo"), 1, "5", 1),
    ]
    assert [(m["trades"], m["profit"], m["win_rate"]) for m in month] == [(3, "7", 2 / 3)]
    assert performance(auth_client, "?period=week")["time_zone"] == "Asia/Tokyo"


def test_the_paper_accounts_are_sampled_once_a_minute_and_summed(auth_client, user, other_user):
    # given: two paper accounts and a live one of the trader, and another trader's paper account
    paper_account(user, label="a", usdt="100")
    paper_account(user, label="b", usdt="250.5")
    live_bot(user)
    paper_account(other_user, usdt="999")
    minute = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)

    # when: beat samples twice in one minute (a task delivered twice), then a minute later
    written = [accounts_equity_record(now=minute), accounts_equity_record(now=minute)]
    written.append(accounts_equity_record(now=minute + timedelta(minutes=1)))

    # then: one row per paper account and minute; the trader sees the sum of theirs
    assert written == [3, 0, 3]
    assert AccountEquity.objects.filter(account__mode="live").count() == 0
    series = performance(auth_client)["equity"]
    start = int(minute.replace(second=0).timestamp() * 1000)
    assert series == [{"time": start, "equity": "350.5"},
                      {"time": start + 60_000, "equity": "350.5"}]  # fmt: skip


def test_another_users_bot_is_not_found(api_client, other_user, runner):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=other_user).key}")

    response = api_client.get(f"/api/bots/{runner.bot.pk}/equity")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert all(line["id"] != runner.bot.pk for line in performance(api_client)["bots"])


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/performance?period=year", "period"), ("/api/performance?limit=0", "limit"),
     ("/api/performance?limit=x", "limit"), ("/api/bots/{id}/equity?period=hour", "period"),
     ("/api/bots/{id}/equity?limit=10001", "limit")],
)  # fmt: skip
def test_a_bad_query_is_a_400_naming_the_parameter(auth_client, runner, path, field):
    response = auth_client.get(path.format(id=runner.bot.pk))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]


def test_anonymous_is_refused(api_client, runner):
    assert api_client.get("/api/performance").status_code == 401
    assert api_client.get(f"/api/bots/{runner.bot.pk}/equity").status_code == 401


def test_a_bots_curve_can_be_limited_to_its_last_day_on_its_own_clock(auth_client, runner):
    base = datetime(2021, 1, 1, tzinfo=UTC)
    BotEquity.objects.bulk_create(
        BotEquity(bot=runner.bot, time=base + timedelta(hours=h), realised=h, unrealised=0)
        for h in range(48)
    )
    day = equity(auth_client, runner.bot.pk, "?period=day")["points"]
    assert len(day) == 25  # hours 23 .. 47: a day before its newest point
    assert len(equity(auth_client, runner.bot.pk, "?limit=5")["points"]) == 5


# --- thinning with age ------------------------------------------------------------------------


def test_thinning_keeps_the_last_row_of_each_hour_then_of_each_day():
    newest = datetime(2026, 6, 1, tzinfo=UTC)
    hourly = newest - timedelta(days=10)  # within 90 days: an hour's rows keep their last
    daily = newest - timedelta(days=200)  # beyond: a day's rows keep their last
    rows = [
        (1, hourly), (2, hourly + timedelta(minutes=30)), (3, hourly + timedelta(hours=1)),
        (4, daily), (5, daily + timedelta(hours=5)), (6, daily + timedelta(days=1)),
    ]  # fmt: skip
    assert thinned_out(rows, newest=newest) == [1, 4]


def test_compaction_is_idempotent_counts_on_the_bots_clock_and_logs_one_line(runner, user, caplog):
    # given: a replay bot's minute rows over four days of 2021 and an account's over four days
    newest = datetime(2021, 5, 4, tzinfo=UTC)
    BotEquity.objects.bulk_create(
        BotEquity(bot=runner.bot, time=newest - timedelta(minutes=m), realised=m, unrealised=0)
        for m in range(0, 4 * 24 * 60, 10)
    )
    now = datetime(2026, 12, 7, tzinfo=UTC)
    account = runner.bot.exchange_account
    AccountEquity.objects.bulk_create(
        AccountEquity(account=account, time=now - timedelta(minutes=m), equity=1)
        for m in range(0, 4 * 24 * 60, 10)
    )
    caplog.set_level(logging.INFO, logger="bots.services.equity")

    # when
    first = equity_compact(now=now)
    second = equity_compact(now=now)

    # then: the last two days (of the bot's clock, not 2026's) stay whole, older ones hourly
    raw = 2 * 24 * 6 + 1  # rows in two days, one every 10 minutes, both ends included
    assert BotEquity.objects.filter(bot=runner.bot).count() == raw + 48
    assert AccountEquity.objects.filter(account=account).count() == raw + 48
    assert first == {"bots": 1, "bot_rows_deleted": 48 * 5 - 1,
                     "accounts": 1, "account_rows_deleted": 48 * 5 - 1}  # fmt: skip
    assert second["bot_rows_deleted"] == second["account_rows_deleted"] == 0
    lines = [r for r in caplog.records if r.getMessage() == "equity.compacted"]
    assert len(lines) == 2
    assert lines[0].bot_rows_deleted == first["bot_rows_deleted"]


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _midnight_ms(moment: datetime, zone: str) -> int:
    local = moment.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


def test_beats_tasks_sample_and_thin_through_celery(user):
    paper_account(user, usdt="42")

    sampled = record_account_equity_task.apply().get()
    thinned = compact_equity_task.apply().get()

    assert sampled == 1
    assert AccountEquity.objects.get().equity == Decimal(42)
    assert thinned == {"bots": 0, "bot_rows_deleted": 0, "accounts": 0, "account_rows_deleted": 0}
