"""Starting, stopping, the kill switch, risk stops, restarts and the dispatcher, with scripted
replay bots on the paper exchange (see ``tests/bots/bot_helpers.py``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from django.utils import timezone

from bots.decisions import Decision
from bots.models import Bot, Order, Position, Trade
from bots.order_ids import bot_order_prefix
from bots.services import (
    BotConfig,
    bot_delete,
    bot_start,
    bot_stop,
    bot_tick,
    bot_update,
    bots_dispatch,
    bots_kill,
    ticks,
)
from bots.services.markets import BotMarket
from bots.tasks import bot_ticks_task
from markets import candle_windows
from markets.exchanges.markets import forget_catalogs
from markets.models import PaperBalance, PaperOrder
from tests.bots.bot_helpers import (
    STEP_MS,
    SYMBOL,
    TIMEFRAME,
    Exploding,
    ManualClock,
    ReplayBot,
    Scripted,
    as_datetime,
    due_ids,
    paper_account,
    paper_free,
    paper_used,
    scripted_bot,
    store_candles,
)
from tests.factories import UserFactory
from tradingbot.errors import AppError

pytestmark = pytest.mark.usefixtures("scripted_strategies")

FIRST, COUNT, WARM = 2000, 120, 40


@pytest.fixture
def rows() -> list[Any]:
    return store_candles(FIRST, COUNT)


def new_runner(user: Any, rows: list[Any], **risk: Any) -> ReplayBot:
    label = risk.pop("label", f"Paper {risk.get('name', 'scripted')}")
    account = paper_account(user, label=label)
    return scripted_bot(user, account, start_ms=rows[WARM].open_time, **risk)


@pytest.fixture
def runner(user: Any, rows: list[Any]) -> ReplayBot:
    runner = new_runner(user, rows)
    runner.start()
    return runner


def kinds(bot: Bot) -> list[str]:
    return list(bot.events.order_by("id").values_list("kind", flat=True))


def sides(bot: Bot) -> list[tuple[str, str]]:
    return list(bot.orders.order_by("id").values_list("side", "reason"))


def refused(call: Any) -> AppError:
    with pytest.raises(AppError) as caught:
        call()
    assert caught.value.status == 409
    return caught.value


# --- transitions --------------------------------------------------------------------------------


def test_start_and_stop_move_the_bot_and_refuse_what_does_not_fit(
    user: Any, rows: list[Any]
) -> None:
    runner = new_runner(user, rows)
    bot = runner.bot
    assert bot.status == Bot.Status.STOPPED
    assert refused(lambda: bot_stop(bot=bot)).code == "invalid_transition"

    bot = runner.start()
    assert bot.status == Bot.Status.RUNNING
    assert bot.next_tick_at is not None
    assert bot.next_tick_at <= timezone.now()
    assert refused(lambda: bot_start(bot=bot, clock=runner.clock)).code == "invalid_transition"
    config = BotConfig(
        name="renamed", exchange_account=bot.exchange_account, symbol=SYMBOL,
        timeframe=TIMEFRAME, strategy=Scripted.key, params={},
    )  # fmt: skip
    assert refused(lambda: bot_update(bot=bot, config=config)).code == "bot_running"
    assert refused(lambda: bot_delete(bot=bot)).code == "bot_running"

    bot = bot_stop(bot=bot, clock=runner.clock)
    assert bot.status == Bot.Status.STOPPED
    assert kinds(bot) == ["started", "stopped"]
    # a copy loaded before the stop still says running: the conditional update refuses it
    stale = Bot.objects.get(pk=bot.pk)
    bot_start(bot=Bot.objects.get(pk=bot.pk), clock=runner.clock)
    stale.status = Bot.Status.STOPPED
    assert "changed meanwhile" in refused(lambda: bot_start(bot=stale)).message


def test_a_bot_in_error_restarts_clean_or_stops_at_once(runner: ReplayBot) -> None:
    Bot.objects.filter(pk=runner.bot.pk).update(
        status=Bot.Status.ERROR, last_error="boom", error_streak=3
    )
    bot = bot_start(bot=runner.refresh(), clock=runner.clock)
    assert (bot.status, bot.last_error, bot.error_streak) == (Bot.Status.RUNNING, "", 0)

    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.ERROR)
    bot = bot_stop(bot=runner.refresh(), clock=runner.clock)
    assert bot.status == Bot.Status.STOPPED
    assert kinds(bot)[-1] == "stopped"


# --- stopping -----------------------------------------------------------------------------------


def _rest_a_limit_order(runner: ReplayBot, cid: str) -> dict[str, Any]:
    """A buy limit order far under the market, placed on the bot's paper account as if by an
    earlier run of the bot (its id carries the bot's prefix)."""
    exchange = BotMarket.of(runner.refresh(), clock=runner.clock).exchange
    return exchange.create_order(
        SYMBOL, "limit", "buy", Decimal("0.01"), Decimal(10_000), client_order_id=cid
    )


def test_stop_cancels_the_open_orders_and_releases_their_reserve(runner: ReplayBot) -> None:
    # given: a tick has run; then an order of the bot is found resting on the exchange
    account = runner.bot.exchange_account
    assert runner.tick().outcome == "held"
    cid = bot_order_prefix(runner.bot.pk) + "restored-1"
    _rest_a_limit_order(runner, cid)
    _rest_a_limit_order(runner, "someone-else-1")  # not the bot's: left alone
    reserved = Decimal("100.200000000000")  # 0.01 BTC at 10,000 plus the 0.2 % maker fee
    assert paper_used(account, "USDT") == 2 * reserved
    # (a running bot looks for such orders on its first tick after a start or a stop only:
    # a live account has a request budget)
    assert runner.tick().outcome == "waiting"
    assert not Order.objects.filter(client_order_id=cid).exists()

    # when
    bot = bot_stop(bot=runner.refresh(), clock=runner.clock)

    # then: the stop's tick adopted the bot's order and cancelled it
    assert bot.status == Bot.Status.STOPPED
    assert "order_adopted" in kinds(bot)
    order = Order.objects.get(client_order_id=cid)
    assert (order.reason, order.side) == ("adopted", "buy")
    assert order.status == Order.Status.CANCELED
    assert PaperOrder.objects.get(client_order_id=cid).status == PaperOrder.Status.CANCELED
    assert PaperOrder.objects.get(client_order_id="someone-else-1").status == "open"
    assert paper_used(account, "USDT") == reserved
    assert paper_free(account, "USDT") == Decimal(10_000) - reserved
    assert not Order.objects.filter(client_order_id="someone-else-1").exists()


def test_stop_with_flatten_sells_the_position(runner: ReplayBot) -> None:
    Scripted.target = 1
    assert runner.tick().outcome == "traded"
    assert runner.next_candle().outcome == "held"
    held = Position.objects.get(bot=runner.bot).qty
    assert held > 0

    bot = bot_stop(bot=runner.refresh(), flatten=True, clock=runner.clock)

    assert bot.status == Bot.Status.STOPPED
    assert sides(bot) == [("buy", "signal"), ("sell", "stop")]
    sell = bot.orders.get(side="sell")
    assert (sell.status, sell.filled_qty) == (Order.Status.CLOSED, held)
    position = Position.objects.get(bot=bot)
    assert position.qty == 0
    assert position.pnl == Trade.objects.get(order=sell).pnl
    assert paper_free(bot.exchange_account, "BTC") == 0
    assert "closed the position" in bot.events.filter(kind="stopped").get().message


def test_stop_without_flatten_keeps_the_position(runner: ReplayBot) -> None:
    Scripted.target = 1
    runner.tick()
    bot = bot_stop(bot=runner.refresh(), clock=runner.clock)
    assert bot.status == Bot.Status.STOPPED
    assert sides(bot) == [("buy", "signal")]
    assert Position.objects.get(bot=bot).qty > 0


def test_stop_with_flatten_leaves_dust_it_cannot_sell_and_says_so(runner: ReplayBot) -> None:
    # given: 0.00001 BTC (about 0.17 USDT, under the 1 USDT minimum) left from an earlier run
    runner.tick()
    dust = Decimal("0.00001")
    Position.objects.filter(bot=runner.bot).update(qty=dust, entry_price=Decimal(17_000))
    PaperBalance.objects.create(account=runner.bot.exchange_account, currency="BTC", free=dust)

    bot = bot_stop(bot=runner.refresh(), flatten=True, clock=runner.clock)

    assert bot.status == Bot.Status.STOPPED
    assert Position.objects.get(bot=bot).qty == dust
    assert bot.events.get(kind="stopped").message == "Stopped by the system: open orders cancelled."
    refusal = bot.events.get(kind="below_minimum")
    assert "below the minimum cost of 1 USDT" in refusal.message
    assert not PaperOrder.objects.exists()  # refused before it reached the exchange


def test_a_stop_while_a_tick_holds_the_bot_is_finished_by_the_next_tick(
    runner: ReplayBot,
) -> None:
    Scripted.target = 1
    runner.tick()
    lease = timezone.now() + timedelta(seconds=30)
    Bot.objects.filter(pk=runner.bot.pk).update(tick_lease_until=lease, tick_lease_token="other")

    bot = bot_stop(bot=runner.refresh(), flatten=True, clock=runner.clock)

    assert bot.status == Bot.Status.STOPPING
    assert sides(bot) == [("buy", "signal")]  # nothing done while the other tick holds it
    assert bot.pk not in due_ids()
    # the holder died; its lease lapses and the dispatcher's next tick finishes the stop
    Bot.objects.filter(pk=bot.pk).update(tick_lease_until=timezone.now() - timedelta(seconds=1))
    assert bot.pk in due_ids()
    assert runner.tick().outcome == "stopped"
    bot = runner.refresh()
    assert bot.status == Bot.Status.STOPPED
    assert sides(bot) == [("buy", "signal"), ("sell", "stop")]
    assert Position.objects.get(bot=bot).qty == 0


def test_a_stop_during_a_tick_is_finished_by_that_tick(
    runner: ReplayBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the stop arrives while the tick is deciding
    real_decide = ticks.decide
    inner: list[Any] = []

    def decide_while_stopped(inputs: Any) -> Decision:
        if not inner:  # a tick may decide twice (at the mark, then at the market)
            inner.append(bot_stop(bot=Bot.objects.get(pk=runner.bot.pk), clock=runner.clock))
        return real_decide(inputs)

    monkeypatch.setattr(ticks, "decide", decide_while_stopped)
    Scripted.target = 1

    result = runner.tick()

    # then: the stop's own tick found the bot busy; the holder stopped it before letting go
    assert [b.status for b in inner] == [Bot.Status.STOPPING]
    assert result.outcome == "stopped"
    bot = runner.refresh()
    assert bot.status == Bot.Status.STOPPED
    assert (bot.tick_lease_until, bot.tick_lease_token) == (None, "")
    assert kinds(bot)[-1] == "stopped"


def test_a_stop_that_comes_as_the_tick_lets_go_is_due_at_once(
    user: Any, rows: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a real clock and a slow replay: the next candle closes two minutes from now
    runner = new_runner(user, rows, speed=0.5)
    bot_start(bot=runner.bot, clock=time.time)
    real_check = ticks._stop_requested

    def stop_right_after_the_check(bot: Bot) -> bool:
        answer = real_check(bot)
        bot_stop(bot=Bot.objects.get(pk=bot.pk), clock=time.time)  # finds the bot busy
        return answer

    monkeypatch.setattr(ticks, "_stop_requested", stop_right_after_the_check)
    assert bot_tick(bot_id=runner.bot.pk).outcome == "held"
    monkeypatch.undo()

    bot = runner.refresh()
    assert bot.status == Bot.Status.STOPPING
    # not left waiting for the next candle: the dispatcher sends its tick now
    assert bot.pk in due_ids()
    assert bot_tick(bot_id=bot.pk).outcome == "stopped"


# --- the kill switch ----------------------------------------------------------------------------


def test_the_kill_switch_stops_the_bots_of_one_user_then_everyones(
    user: Any, other_user: Any, rows: list[Any]
) -> None:
    staff = UserFactory(is_staff=True)
    mine = [new_runner(user, rows, name=f"mine {i}") for i in range(2)]
    theirs = new_runner(other_user, rows, name="theirs")
    idle = new_runner(user, rows, name="idle")  # stopped: the switch leaves it alone
    runners = {r.bot.pk: r for r in [*mine, theirs]}
    for r in runners.values():
        r.start()
    Scripted.target = 1

    def dispatch() -> list[int]:
        sent: list[int] = []
        bots_dispatch(send=lambda ids: [sent.append(pk) or runners[pk].tick() for pk in ids])
        Bot.objects.update(next_tick_at=timezone.now())  # due again for the next round
        return sorted(sent)

    assert dispatch() == sorted(runners)  # each enters
    assert bots_kill(user=user, by=staff) == 2

    statuses = dict(Bot.objects.values_list("pk", "status"))
    assert [statuses[r.bot.pk] for r in mine] == [Bot.Status.STOPPING] * 2
    assert statuses[theirs.bot.pk] == Bot.Status.RUNNING
    assert statuses[idle.bot.pk] == Bot.Status.STOPPED
    for r in mine:
        [killed] = r.bot.events.filter(kind="killed")
        assert staff.email in killed.message
    dispatch()
    statuses = dict(Bot.objects.values_list("pk", "status"))
    assert [statuses[r.bot.pk] for r in mine] == [Bot.Status.STOPPED] * 2
    assert statuses[theirs.bot.pk] == Bot.Status.RUNNING
    assert [sides(r.bot) for r in mine] == [[("buy", "signal")]] * 2  # no flatten asked

    assert bots_kill(flatten=True) == 1  # everyone's: only theirs is still active
    dispatch()
    assert runners[theirs.bot.pk].refresh().status == Bot.Status.STOPPED
    assert sides(theirs.bot) == [("buy", "signal"), ("sell", "stop")]
    assert Position.objects.get(bot=theirs.bot).qty == 0
    assert not idle.bot.events.exists()


# --- risk stops ---------------------------------------------------------------------------------


def test_the_daily_loss_limit_stops_the_bot_and_closes_the_position(
    user: Any, rows: list[Any]
) -> None:
    runner = new_runner(user, rows, daily_loss_limit=Decimal(10))
    runner.start()
    assert runner.tick().outcome == "held"  # flat, no loss: it runs on
    assert runner.refresh().status == Bot.Status.RUNNING

    # the entry pays 20 USDT of fee (0.2 % of 10,000) and the slippage; marked at the next
    # close, today's PnL is under -10
    Scripted.target = 1
    assert runner.next_candle().outcome == "traded"
    result = runner.next_candle()

    assert result.outcome == "stopped"
    bot = runner.refresh()
    assert bot.status == Bot.Status.STOPPED
    assert sides(bot) == [("buy", "signal"), ("sell", "stop")]
    assert Position.objects.get(bot=bot).qty == 0
    assert paper_free(bot.exchange_account, "BTC") == 0
    event = bot.events.get(kind="daily_loss_limit")
    assert Decimal(event.data["pnl_today"]) <= Decimal(-10)
    assert kinds(bot)[-1] == "stopped"
    assert bot.events.get(kind="stopped").message == (
        "Stopped by the system because the daily loss limit was reached: open orders cancelled "
        "and closed the position."
    )


def test_a_restart_on_the_day_the_limit_was_hit_stops_again_without_trading(
    user: Any, rows: list[Any]
) -> None:
    runner = new_runner(user, rows, daily_loss_limit=Decimal(10))
    runner.start()
    Scripted.target = 1
    runner.tick()
    for _ in range(3):
        if runner.next_candle().outcome == "stopped":
            break
    assert runner.refresh().status == Bot.Status.STOPPED
    orders = runner.bot.orders.count()
    assert orders == 2

    # the same market day, the signal still long
    runner.start()
    result = runner.next_candle()

    assert result.outcome == "stopped"
    assert runner.refresh().status == Bot.Status.STOPPED
    assert runner.bot.orders.count() == orders  # no buy straight into the limit, no sell
    assert kinds(runner.bot).count("daily_loss_limit") == 2


def test_after_a_stop_loss_the_bot_waits_for_the_signal_to_change(
    user: Any, rows: list[Any]
) -> None:
    runner = new_runner(user, rows, stop_loss_pct=Decimal("0.2"))
    runner.start()
    Scripted.target = 1
    assert runner.tick().outcome == "traded"  # the buy, and its stop-loss on the exchange
    bot = runner.refresh()
    stop = bot.orders.get(reason="stop_loss")
    entry = bot.orders.get(side="buy").average_price
    assert (stop.order_type, stop.status, stop.side) == ("stop_market", "open", "sell")
    assert stop.price == (entry * Decimal("0.998")).quantize(Decimal("0.01"), ROUND_FLOOR)
    for _ in range(60):
        runner.next_candle()
        if runner.refresh().risk_exit_target is not None:
            break
    bot = runner.refresh()
    assert sides(bot) == [("buy", "signal"), ("sell", "stop_loss")]
    # it filled inside the first candle that reached it: at the stop, or a worse open, less slippage
    [fill] = Trade.objects.filter(order__reason="stop_loss")
    fill_ms = int(fill.time.timestamp() * 1000)
    candle = next(r for r in rows if r.open_time == fill_ms)
    assert candle.low <= stop.price
    assert not any(r.low <= stop.price for r in rows if stop.candle_ms < r.open_time < fill_ms)
    raw = min(stop.price, Decimal(candle.open))
    assert fill.price == (raw * Decimal("0.9995")).quantize(Decimal("0.01"))
    assert bot.last_candle_ms == fill_ms  # noticed on the tick of the candle it filled in
    assert bot.risk_exit_target == 1

    # the signal is still long: no re-entry
    for _ in range(3):
        assert runner.next_candle().outcome == "held"
    assert bot.orders.count() == 2
    # it turns flat, then long again: the bot enters again
    Scripted.target = 0
    runner.next_candle()
    assert runner.refresh().risk_exit_target is None
    Scripted.target = 1
    assert runner.next_candle().outcome == "traded"
    assert sides(bot)[-2:] == [("buy", "signal"), ("sell", "stop_loss")]  # with its new stop


# --- restarts -----------------------------------------------------------------------------------


def test_a_process_restart_continues_from_the_stored_state(
    runner: ReplayBot, rows: list[Any]
) -> None:
    Scripted.target = 1
    for _ in range(3):
        runner.next_candle()
    before = runner.refresh().last_candle_ms
    assert before == rows[WARM + 2].open_time
    orders = list(Order.objects.filter(bot=runner.bot).values_list("client_order_id", flat=True))
    events = runner.bot.events.count()

    # the process restarts: nothing of the bot is left in memory
    candle_windows.public_exchange.cache_clear()
    forget_catalogs()
    fresh = ReplayBot(Bot.objects.get(pk=runner.bot.pk), ManualClock(runner.clock.now))

    assert fresh.tick().outcome == "waiting"  # the same candle: nothing again
    assert fresh.bot.events.count() == events
    Scripted.target = 0
    result = fresh.next_candle()
    assert (result.outcome, result.candle_ms) == ("traded", rows[WARM + 3].open_time)
    new = Order.objects.filter(bot=runner.bot).exclude(client_order_id__in=orders)
    assert list(new.values_list("side", "candle_ms")) == [("sell", rows[WARM + 3].open_time)]


def test_a_stopped_replay_resumes_after_the_last_candle_it_acted_on(
    runner: ReplayBot, rows: list[Any]
) -> None:
    Scripted.target = 1
    runner.tick()
    runner.next_candle()
    bot = bot_stop(bot=runner.refresh(), clock=runner.clock)
    last = bot.last_candle_ms
    assert last == rows[WARM].open_time

    runner.clock.advance(3600)  # an hour later: a hundred candles of wall time at this speed
    runner.start()
    ticked = [runner.tick(), runner.next_candle(), runner.next_candle()]

    assert [t.outcome for t in ticked] == ["waiting", "held", "held"]
    assert [t.candle_ms for t in ticked[1:]] == [last + STEP_MS, last + 2 * STEP_MS]
    assert Order.objects.filter(bot=bot).count() == 1


# --- the dispatcher -----------------------------------------------------------------------------


def test_the_dispatcher_sends_each_due_bot_once(user: Any, rows: list[Any], settings: Any) -> None:
    due, later, held, stopped = (new_runner(user, rows, name=n) for n in "abcd")
    for r in (due, later, held):
        r.start()
    now = timezone.now()
    Bot.objects.filter(pk=later.bot.pk).update(next_tick_at=now + timedelta(minutes=5))
    Bot.objects.filter(pk=held.bot.pk).update(tick_lease_until=now + timedelta(seconds=30))

    sent: list[int] = []
    assert bots_dispatch(send=sent.extend) == 1
    assert bots_dispatch(send=sent.extend) == 0  # its tick is queued: not sent again
    assert sent == [due.bot.pk]

    pushed = Bot.objects.get(pk=due.bot.pk).next_tick_at
    assert pushed is not None
    expected = now + timedelta(seconds=settings.BOT_REDISPATCH_SECONDS)
    assert abs((pushed - expected).total_seconds()) < 5
    # a lost message: once the redispatch delay has passed, it is due again
    redispatch = timedelta(seconds=settings.BOT_REDISPATCH_SECONDS)
    assert due.bot.pk not in due_ids(now + redispatch - timedelta(seconds=5))
    assert due.bot.pk in due_ids(now + redispatch + timedelta(seconds=5))
    assert stopped.bot.pk not in due_ids(now + timedelta(days=1))


def test_a_ticked_bot_is_next_due_when_its_next_candle_closes(user: Any, rows: list[Any]) -> None:
    runner = new_runner(user, rows, speed=0.5)  # two minutes a candle on the real clock
    bot_start(bot=runner.bot, clock=time.time)
    sent: list[int] = []
    bots_dispatch(send=sent.extend)
    assert bot_tick(bot_id=sent[0]).outcome == "held"

    bot = runner.refresh()
    assert bot.next_tick_at is not None
    assert timezone.now() < bot.next_tick_at <= timezone.now() + timedelta(seconds=120)
    assert bots_dispatch(send=sent.extend) == 0
    assert as_datetime(bot.last_candle_ms or 0) == as_datetime(rows[WARM - 1].open_time)


def test_the_dispatcher_sends_the_due_bots_in_batches(
    user: Any, rows: list[Any], settings: Any
) -> None:
    settings.BOT_TICK_BATCH = 2
    runners = [new_runner(user, rows, name=f"batch {n}") for n in range(5)]
    for runner in runners:
        runner.start()
    batches: list[list[int]] = []
    assert bots_dispatch(send=batches.append) == 5
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert sorted(pk for batch in batches for pk in batch) == sorted(r.bot.pk for r in runners)


def test_a_batch_ticks_every_bot_although_one_of_them_fails(user: Any, rows: list[Any]) -> None:
    # given: three running bots, the middle one on a strategy that raises
    first, second, third = (new_runner(user, rows, name=n) for n in ("first", "second", "third"))
    Bot.objects.filter(pk=second.bot.pk).update(strategy_id=Exploding.key)
    for runner in (first, second, third):
        bot_start(bot=runner.refresh(), clock=time.time)

    outcomes = bot_ticks_task.apply(args=([first.bot.pk, second.bot.pk, third.bot.pk],)).get()

    assert outcomes == {"held": 2, "error": 1}
    assert [r.refresh().status for r in (first, second, third)] == [
        Bot.Status.RUNNING, Bot.Status.ERROR, Bot.Status.RUNNING,
    ]  # fmt: skip
    assert first.bot.last_candle_ms is not None
    assert third.bot.last_candle_ms is not None


def test_a_changed_risk_setting_resumes_the_replay_where_it_was(runner: ReplayBot) -> None:
    Scripted.target = 1
    runner.tick()
    runner.next_candle()
    before = runner.refresh().last_candle_ms
    bot_stop(bot=runner.bot, clock=runner.clock)
    config = BotConfig(
        name=runner.bot.name, exchange_account=runner.bot.exchange_account, symbol=SYMBOL,
        timeframe=TIMEFRAME, strategy=Scripted.key, params={}, data_source="replay",
        replay_start=as_datetime(runner.bot.replay_start_ms or 0), replay_speed=60,
        stop_loss_pct=Decimal("5"),
    )  # fmt: skip

    changed = bot_update(bot=runner.refresh(), config=config)

    assert changed.stop_loss_pct == Decimal("5")
    assert changed.last_candle_ms == before  # not rewound to the replay's start
    restarted = bot_start(bot=changed, clock=runner.clock)
    assert restarted.replay_resume_ms == (before or 0) + STEP_MS
    assert runner.tick().outcome == "waiting"  # nothing new yet: no candle acted on twice
    assert runner.next_candle().candle_ms == (before or 0) + STEP_MS


def test_another_timeframe_starts_the_bot_afresh(runner: ReplayBot) -> None:
    runner.tick()
    bot_stop(bot=runner.refresh(), clock=runner.clock)
    config = BotConfig(
        name=runner.bot.name, exchange_account=runner.bot.exchange_account, symbol=SYMBOL,
        timeframe="15m", strategy=Scripted.key, params={},
    )  # fmt: skip

    changed = bot_update(bot=runner.refresh(), config=config)

    assert changed.last_candle_ms is None


@pytest.mark.parametrize(("zone", "counted"), [("UTC", False), ("Europe/Athens", True)])
def test_the_daily_loss_limit_counts_the_traders_day_not_the_utc_one(
    user: Any, rows: list[Any], zone: str, counted: bool
) -> None:
    # given: a loss realised an hour before UTC midnight of the bot's market day, which is
    # after midnight in Athens (UTC+2 in winter): today's for an Athens trader, yesterday's for
    # a UTC one
    user.time_zone = zone
    user.save(update_fields=["time_zone"])
    runner = new_runner(user, rows, daily_loss_limit=Decimal(10))
    runner.start()
    assert runner.tick().outcome == "held"
    now = datetime.fromtimestamp(runner.refresh().last_candle_ms / 1000, tz=UTC)
    assert 2 <= now.hour < 21  # so that the two midnights fall as said
    utc_midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    bot = runner.bot
    sold = Order.objects.create(
        bot=bot, client_order_id="earlier-sell", symbol=bot.symbol, side="sell",
        order_type="market", qty=Decimal("0.01"), status="closed", reason="signal", candle_ms=0,
    )  # fmt: skip
    Trade.objects.create(
        bot=bot, order=sold, symbol=bot.symbol, side="sell", qty=Decimal("0.01"),
        price=Decimal(17000), pnl=Decimal(-50), time=utc_midnight - timedelta(hours=1),
    )  # fmt: skip
    # when: the bot acts on its next candle, flat
    result = runner.next_candle()
    # then: the Athens trader's bot stops on that loss; the UTC trader's runs on
    assert (result.outcome == "stopped") is counted
    assert runner.refresh().events.filter(kind="daily_loss_limit").exists() is counted
