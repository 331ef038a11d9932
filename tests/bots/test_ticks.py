"""The trading tick (``bots.services.ticks.bot_tick``): exactly-once orders and failures.

The bots trade on the paper exchange over stored candles (a replay driven by a ``ManualClock``),
or, where the real exchange must speak, through ccxt's own code with only the HTTP transport
replaced (``tests/markets/ccxt_replay.py``). The signal comes from the ``Scripted`` strategy.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone

from bots.models import Bot, BotEvent, Order, Position, Trade
from bots.order_ids import bot_order_prefix, client_order_id
from bots.services import BotConfig, bot_create, bot_start, bot_stop, bot_tick, bot_update
from bots.services.markets import BotMarket
from bots.tasks import bot_tick_task
from markets.exchanges.errors import TransientExchangeError
from markets.models import PaperOrder
from tests.backtests.worker_helpers import group_listener  # noqa: F401 - a fixture
from tests.bots.bot_helpers import (
    STEP_MS,
    SYMBOL,
    TIMEFRAME,
    ManualClock,
    ReplayBot,
    Scripted,
    due_ids,
    paper_account,
    paper_free,
    replay_bot,
    scripted_bot,
    store_candles,
)
from tests.markets.ccxt_replay import answer, json_response, raising, serve_everywhere
from tests.markets.ccxt_replay import spot_ticker_response as recorded_ticker

pytestmark = pytest.mark.usefixtures("scripted_strategies")

FIRST, COUNT, WARM = 2000, 80, 40  # stored rows, and the row the replay starts at
LIVE_KEY = "bg_live_key_tick_5a7c1e90"
LIVE_SECRET = "s3cr3t-tick-9b2d44"
LIVE_PASSPHRASE = "pass-tick-77f1"


@pytest.fixture
def rows() -> list[Any]:
    return store_candles(FIRST, COUNT)


@pytest.fixture
def runner(user: Any, rows: list[Any]) -> ReplayBot:
    """A started scripted replay bot, 10,000 USDT, at market time ``rows[WARM]``: its first tick
    decides on the candle before (``rows[WARM - 1]``)."""
    runner = scripted_bot(user, paper_account(user), start_ms=rows[WARM].open_time)
    runner.start()
    return runner


def kinds(bot: Bot) -> list[str]:
    return list(bot.events.order_by("id").values_list("kind", flat=True))


def assert_books_match_the_exchange(bot: Bot) -> None:
    """One exchange order per booked order, one trade per fill, the position as the balance."""
    account = bot.exchange_account
    assert PaperOrder.objects.filter(account=account).count() == bot.orders.count()
    for order in bot.orders.all():
        paper = PaperOrder.objects.get(account=account, client_order_id=order.client_order_id)
        assert (order.status, order.filled_qty) == (paper.status, paper.filled)
        assert order.trades.count() == (1 if paper.filled else 0)
    position = Position.objects.get(bot=bot)
    assert position.qty == paper_free(account, "BTC")


# --- exactly once -------------------------------------------------------------------------------


def test_the_same_tick_twice_places_one_order(runner: ReplayBot, rows: list[Any]) -> None:
    Scripted.target = 1
    first = runner.tick()
    second = runner.tick()

    assert (first.outcome, first.orders, first.candle_ms) == ("traded", 1, rows[WARM - 1].open_time)
    assert second.outcome == "waiting"
    [order] = Order.objects.filter(bot=runner.bot)
    assert order.client_order_id == client_order_id(runner.bot.pk, rows[WARM - 1].open_time, "buy")
    assert order.status == Order.Status.CLOSED
    assert_books_match_the_exchange(runner.bot)


def test_a_tick_whose_bookkeeping_was_lost_decides_again_and_sends_nothing(
    runner: ReplayBot,
) -> None:
    Scripted.target = 1
    assert runner.tick().outcome == "traded"
    # the tick's last write (last_candle_ms) did not happen: the candle looks new again
    Bot.objects.filter(pk=runner.bot.pk).update(last_candle_ms=None)

    again = runner.tick()

    assert again.outcome == "held"
    assert Order.objects.filter(bot=runner.bot).count() == 1
    assert_books_match_the_exchange(runner.bot)


def test_a_retried_tick_task_places_one_order(user: Any, rows: list[Any]) -> None:
    # on the real clock: half a candle a minute, so no new candle closes during the test
    runner = scripted_bot(user, paper_account(user), start_ms=rows[WARM].open_time, speed=0.5)
    bot = bot_start(bot=runner.bot, clock=time.time)
    Scripted.target = 1

    first = bot_tick_task.apply(args=(bot.pk,))
    retried = bot_tick_task.apply(args=(bot.pk,))

    assert first.get() == "traded"
    assert retried.get() == "waiting"
    assert Order.objects.filter(bot=bot).count() == 1
    assert_books_match_the_exchange(bot)


def test_a_decision_whose_id_is_taken_is_not_sent_again(
    runner: ReplayBot, rows: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    # given: this candle's buy was decided before and refused by the exchange
    cid = client_order_id(runner.bot.pk, rows[WARM - 1].open_time, "buy")
    Order.objects.create(
        bot=runner.bot, client_order_id=cid, symbol=SYMBOL, side="buy", order_type="market",
        qty=Decimal("0.1"), reason="signal", candle_ms=rows[WARM - 1].open_time,
        status=Order.Status.REJECTED,
    )  # fmt: skip
    Scripted.target = 1
    caplog.set_level(logging.INFO, logger="bots.tick")

    result = runner.tick()

    assert (result.outcome, result.orders) == ("held", 0)
    assert not PaperOrder.objects.exists()
    [duplicate] = [r for r in caplog.records if r.getMessage() == "bot.order_duplicate"]
    assert duplicate.client_order_id == cid


class _SentThenTimedOut:
    """The exchange got the order (it is committed on the paper ledger), the answer was lost."""

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.exchange, name)

    def create_order(self, *args: Any, **kwargs: Any) -> Any:
        self.exchange.create_order(*args, **kwargs)
        self.sent += 1
        raise TransientExchangeError("bitget did not answer in time")


class _WorkerKilled(BaseException):
    """The process died: no ``except Exception`` sees it, nothing after it runs."""


class _SentThenKilled(_SentThenTimedOut):
    def create_order(self, *args: Any, **kwargs: Any) -> Any:
        self.exchange.create_order(*args, **kwargs)
        self.sent += 1
        raise _WorkerKilled


def _wrap_exchange(monkeypatch: pytest.MonkeyPatch, wrapper: type[_SentThenTimedOut]) -> list[Any]:
    """Every market built from now on trades through ``wrapper``; returns the wrappers made."""
    made: list[Any] = []
    real_of = BotMarket.of.__func__  # type: ignore[attr-defined]

    def of(cls: type[BotMarket], bot: Bot, **kwargs: Any) -> BotMarket:
        market = real_of(cls, bot, **kwargs)
        market.exchange = wrapper(market.exchange)
        made.append(market.exchange)
        return market

    monkeypatch.setattr(BotMarket, "of", classmethod(of))
    return made


def test_an_order_sent_but_not_recorded_is_adopted_and_never_sent_again(
    runner: ReplayBot, rows: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the order reaches the exchange, then the answer times out
    wrappers = _wrap_exchange(monkeypatch, _SentThenTimedOut)
    Scripted.target = 1
    failed = runner.tick()
    assert failed.outcome == "retry"
    [order] = Order.objects.filter(bot=runner.bot)
    assert order.status == Order.Status.PENDING
    assert PaperOrder.objects.filter(client_order_id=order.client_order_id).count() == 1
    assert not Trade.objects.filter(bot=runner.bot).exists()
    assert runner.refresh().last_candle_ms is None  # the candle is not done with

    # when: the exchange answers again; the next tick runs (same candle, then the next one)
    monkeypatch.undo()
    adopted = runner.tick()
    later = runner.next_candle()

    # then: the fill is booked once, from the exchange's record, and no second order went out
    assert [w.sent for w in wrappers] == [1]
    assert (adopted.outcome, adopted.orders) == ("held", 0)
    assert (later.outcome, later.orders) == ("held", 0)
    order.refresh_from_db()
    assert order.status == Order.Status.CLOSED
    assert order.filled_qty > 0
    assert Trade.objects.filter(bot=runner.bot).count() == 1
    position = Position.objects.get(bot=runner.bot)
    assert position.qty == order.filled_qty
    assert_books_match_the_exchange(runner.bot)
    assert kinds(runner.bot).count("exchange_unavailable") == 1
    assert kinds(runner.bot).count("exchange_recovered") == 1
    assert runner.refresh().error_streak == 0


def test_a_worker_killed_after_sending_leaves_the_order_to_the_next_tick(
    runner: ReplayBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    _wrap_exchange(monkeypatch, _SentThenKilled)
    Scripted.target = 1
    with pytest.raises(_WorkerKilled):
        runner.tick()
    monkeypatch.undo()
    # the dead worker's lease still holds the bot...
    assert runner.tick().outcome == "busy"
    # ...until it lapses
    Bot.objects.filter(pk=runner.bot.pk).update(
        tick_lease_until=timezone.now() - timedelta(seconds=1)
    )

    resumed = runner.tick()

    assert (resumed.outcome, resumed.orders) == ("held", 0)
    [order] = Order.objects.filter(bot=runner.bot)
    assert order.status == Order.Status.CLOSED
    assert Trade.objects.filter(bot=runner.bot).count() == 1
    assert_books_match_the_exchange(runner.bot)


def test_a_pending_order_the_exchange_never_got_is_decided_again_under_the_same_id(
    runner: ReplayBot, rows: list[Any]
) -> None:
    # given: the order was written, then the worker died before sending it
    candle_ms = rows[WARM - 1].open_time
    cid = client_order_id(runner.bot.pk, candle_ms, "buy")
    Order.objects.create(
        bot=runner.bot, client_order_id=cid, symbol=SYMBOL, side="buy", order_type="market",
        qty=Decimal("0.1"), reason="signal", candle_ms=candle_ms,
    )  # fmt: skip
    Scripted.target = 1

    result = runner.tick()

    assert (result.outcome, result.orders, result.candle_ms) == ("traded", 1, candle_ms)
    [order] = Order.objects.filter(bot=runner.bot)
    assert order.client_order_id == cid
    assert order.status == Order.Status.CLOSED
    assert order.qty != Decimal("0.1")  # the decision of this tick, not the lost row's
    assert PaperOrder.objects.filter(client_order_id=cid).count() == 1
    assert_books_match_the_exchange(runner.bot)
    lost = runner.bot.events.get(kind="order_not_found")
    assert lost.data == {"client_order_id": cid}
    assert "never reached the exchange" in lost.message


def test_a_tick_of_a_bot_another_tick_holds_returns_busy_and_places_nothing(
    runner: ReplayBot,
) -> None:
    held_until = timezone.now() + timedelta(seconds=30)
    Bot.objects.filter(pk=runner.bot.pk).update(
        tick_lease_until=held_until, tick_lease_token="the-other-worker"
    )
    Scripted.target = 1

    result = runner.tick()

    assert result.outcome == "busy"
    assert not Order.objects.filter(bot=runner.bot).exists()
    assert not PaperOrder.objects.exists()
    bot = runner.refresh()
    assert (bot.tick_lease_token, bot.tick_lease_until) == ("the-other-worker", held_until)
    assert bot.last_candle_ms is None
    assert runner.bot.pk not in due_ids()


# --- the live exchange, through ccxt ------------------------------------------------------------


def _live_clock(rows: list[Any]) -> ManualClock:
    """Wall time a second after the last stored candle closed (all stored candles are closed)."""
    return ManualClock((rows[-1].open_time + STEP_MS) / 1000 + 1)


def _live_bot(user: Any, account: Any, **config: Any) -> Bot:
    bot = bot_create(
        user=user,
        config=BotConfig(
            name=config.pop("name", "live"), exchange_account=account, symbol=SYMBOL,
            timeframe=TIMEFRAME, strategy=config.pop("strategy", Scripted.key), params={},
            **config,
        ),
    )  # fmt: skip
    return bot_start(bot=bot, confirm_live=True)


StartBitget = Callable[[type["_Bitget"]], tuple["_Bitget", Bot]]


@pytest.fixture
def bitget_bot(
    user: Any,
    rows: list[Any],
    exchange_account_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> StartBitget:
    """``start(fake)``: a ``fake`` Bitget (a ``_Bitget``) quoting the last stored close with
    1,000 USDT free, and a bot started on a live account whose HTTP requests it answers (ccxt's
    own request and response code runs); all the candles the bot reads are stored."""

    def started(fake: type[_Bitget]) -> tuple[_Bitget, Bot]:
        bitget = fake(price=Decimal(rows[-1].close), usdt=Decimal(1000))
        settings.BOT_CANDLE_WINDOW = 50
        serve_everywhere(monkeypatch, bitget)
        account = exchange_account_factory(
            user=user, mode="live", api_key=LIVE_KEY, api_secret=LIVE_SECRET,
            passphrase=LIVE_PASSPHRASE, verified_at=timezone.now(),
        )  # fmt: skip
        return bitget, _live_bot(user, account)

    return started


def bitget_error(code: str, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "requestTime": 1711648951774, "data": None}


def test_a_rejected_api_key_puts_the_bot_in_error_with_a_clear_message(
    user: Any,
    rows: list[Any],
    exchange_account_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.BOT_CANDLE_WINDOW = 50  # all of them stored: no candle request
    rejected = answer(400, bitget_error("40037", "Apikey does not exist"))
    sent = serve_everywhere(monkeypatch, rejected)
    account = exchange_account_factory(  # keys accepted when saved, revoked since
        user=user, mode="live", api_key=LIVE_KEY, api_secret=LIVE_SECRET,
        passphrase=LIVE_PASSPHRASE, verified_at=timezone.now(),
    )  # fmt: skip
    bot = _live_bot(user, account)
    Scripted.target = 1

    result = bot_tick(bot_id=bot.pk, clock=_live_clock(rows))

    assert result.outcome == "error"
    assert sent, "ccxt must have called Bitget"
    assert sent[0].headers["ACCESS-KEY"] == LIVE_KEY  # signed by ccxt's own code
    bot.refresh_from_db()
    assert bot.status == Bot.Status.ERROR
    assert bot.last_error == "exchange rejected the API key: check the exchange account's API key"
    event = bot.events.get(kind="exchange_auth_failed")
    assert event.level == BotEvent.Level.ERROR
    assert event.message == bot.last_error
    everything = bot.last_error + event.message + str(event.data)
    assert not any(s in everything for s in (LIVE_KEY, LIVE_SECRET, LIVE_PASSPHRASE))
    assert not Order.objects.filter(bot=bot).exists()
    assert bot.pk not in due_ids(timezone.now() + timedelta(days=1))
    # a bot in error is not ticked again
    assert bot_tick(bot_id=bot.pk, clock=_live_clock(rows)).outcome == "idle"


class _Outage:
    """Bitget's public API: ``failures`` answer the next requests, then the recorded ticker."""

    def __init__(self, *failures: Any) -> None:
        self.failures = list(failures)
        self.requests: list[Any] = []

    def __call__(self, request: requests.PreparedRequest) -> requests.Response:
        self.requests.append(request)
        if self.failures:
            return self.failures.pop(0)(request)
        if "/spot/market/tickers" in (request.url or ""):
            return json_response(request, 200, recorded_ticker())
        raise AssertionError(f"unexpected request {request.url}")


def test_a_transient_exchange_failure_backs_off_and_is_reported_once_per_incident(
    user: Any,
    rows: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: a live paper bot (real candles stored, Bitget's ticker for prices) and an outage
    settings.BOT_CANDLE_WINDOW = 50
    outage = _Outage(
        answer(429, bitget_error("429", "Too Many Requests")),
        raising(requests.exceptions.ConnectionError("Connection refused")),
        answer(503, bitget_error("40604", "Server is busy, please try again later")),
    )
    serve_everywhere(monkeypatch, outage)
    bot = _live_bot(user, paper_account(user))
    clock = _live_clock(rows)
    Scripted.target = 1
    caplog.set_level(logging.INFO, logger="bots.tick")

    # when: three tries fail, the fourth gets through
    streaks = []
    for delay in (2, 4, 8):
        before = timezone.now()
        assert bot_tick(bot_id=bot.pk, clock=clock).outcome == "retry"
        after = timezone.now()
        bot.refresh_from_db()
        assert bot.next_tick_at is not None
        # then: backing off 2, 4, 8 s from the failed try
        backoff = timedelta(seconds=delay)
        assert before + backoff <= bot.next_tick_at <= after + backoff
        streaks.append(bot.error_streak)
    recovered = bot_tick(bot_id=bot.pk, clock=clock)

    # and one event for the incident, one for the recovery
    assert streaks == [1, 2, 3]
    assert bot.status == Bot.Status.RUNNING
    assert (recovered.outcome, recovered.orders) == ("traded", 1)
    bot.refresh_from_db()
    assert bot.error_streak == 0
    assert kinds(bot).count("exchange_unavailable") == 1
    assert kinds(bot).count("exchange_recovered") == 1
    unavailable = bot.events.get(kind="exchange_unavailable")
    assert unavailable.level == BotEvent.Level.WARNING
    assert "rate limit" in unavailable.message
    # the tick logs the incident's first try and the recovery, not every try
    ticks = [r for r in caplog.records if r.name == "bots.tick" and r.getMessage() == "bot.tick"]
    assert [r.action for r in ticks] == ["retry", "traded"]
    # and the order went through at Bitget's price
    order = Order.objects.get(bot=bot)
    assert order.status == Order.Status.CLOSED
    assert order.average_price is not None
    assert abs(order.average_price - Decimal("73369.13") * Decimal("1.0005")) < Decimal("0.01")

    # a new incident on a later candle, when the bot needs the exchange (to sell), is a new
    # event (a candle on which the bot only holds asks the exchange nothing)
    outage.failures.append(answer(429, bitget_error("429", "Too Many Requests")))
    Scripted.target = 0
    clock.advance(STEP_MS / 1000)
    store_candles(FIRST + COUNT, 1)
    assert bot_tick(bot_id=bot.pk, clock=clock).outcome == "retry"
    assert kinds(bot).count("exchange_unavailable") == 2


class _Unreachable(_SentThenTimedOut):
    def fetch_open_orders(self, *args: Any, **kwargs: Any) -> Any:
        raise TransientExchangeError("could not reach bitget")


def test_a_stop_that_meets_an_outage_still_stops_and_says_the_position_stayed_open(
    runner: ReplayBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a bot holding a position, and an exchange that cannot be reached
    Scripted.target = 1
    runner.tick()
    _wrap_exchange(monkeypatch, _Unreachable)

    # when: it is stopped with "close the position"
    bot = bot_stop(bot=runner.refresh(), flatten=True, clock=runner.clock)

    # then: it is stopped at once (no backoff), the position could not be closed, and its log
    # says so, and who stopped it
    assert bot.status == Bot.Status.STOPPED
    assert Position.objects.get(bot=runner.bot).qty > 0
    stopped = bot.events.get(kind="stopped")
    assert stopped.level == BotEvent.Level.WARNING
    assert stopped.message == ("Stopped by the system; position not closed: exchange unreachable.")
    # and a new start trades on as before once the exchange answers
    monkeypatch.undo()
    assert bot_start(bot=bot, clock=runner.clock).status == Bot.Status.RUNNING


def test_a_stop_that_closes_the_position_announces_the_flat_position(
    runner: ReplayBot,
    group_listener: Any,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: a bot in a long position, listened to on its group
    Scripted.target = 1
    runner.tick()
    group_listener.join(f"bot-{runner.bot.pk}")

    # when: it is stopped with "close the position" (the stop carries it out at once)
    with django_capture_on_commit_callbacks(execute=True):
        bot = bot_stop(bot=runner.refresh(), flatten=True, clock=runner.clock)
    assert bot.status == Bot.Status.STOPPED

    # then: a page showing the position hears that it is flat, after the closing trade
    messages = group_listener.receive(seconds=1)  # all was published before it returned
    events = [e for m in messages for e in (m.get("events") or [m["event"]])]
    types = [e["type"] for e in events]
    assert "bot.trade" in types
    positions = [e["data"] for e in events if e["type"] == "bot.position"]
    assert positions
    assert positions[-1]["qty"] == "0"
    assert types.index("bot.trade") < len(types) - 1 - types[::-1].index("bot.position")


def _ticker_at(price: Decimal) -> dict[str, Any]:
    """Bitget's recorded ticker answer, moved to ``price``."""
    answer = copy.deepcopy(recorded_ticker())
    answer["data"][0].update(lastPr=str(price), bidPr=str(price), askPr=str(price))
    return answer


def test_a_restart_after_a_change_checks_the_risk_levels_on_the_newest_candle_only(
    user: Any, rows: list[Any], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # given: a live paper bot bought at the newest close; Bitget's ticker says that price
    settings.BOT_CANDLE_WINDOW = 50
    newest = rows[-1]
    ticker = _ticker_at(newest.close)
    serve_everywhere(monkeypatch, lambda request: json_response(request, 200, ticker))
    clock = _live_clock(rows)
    bot = _live_bot(user, paper_account(user))
    Scripted.target = 1
    assert bot_tick(bot_id=bot.pk, clock=clock).outcome == "traded"
    entry = Position.objects.get(bot=bot).entry_price
    assert entry is not None
    # a take-profit level the newest candle did not reach, but older candles of the window did
    take = Decimal("0.7")
    level = entry * (1 + take / 100)
    assert newest.high < level <= max(r.high for r in rows[-50:])

    # when: stopped, given a take-profit, started again with the last candle forgotten (as after
    # a database restore, or a change of market and back)
    bot_stop(bot=Bot.objects.get(pk=bot.pk), clock=clock)
    config = BotConfig(
        name="live", exchange_account=bot.exchange_account, symbol=SYMBOL, timeframe=TIMEFRAME,
        strategy=Scripted.key, params={}, take_profit_pct=take,
    )  # fmt: skip
    bot_update(bot=Bot.objects.get(pk=bot.pk), config=config)
    Bot.objects.filter(pk=bot.pk).update(last_candle_ms=None)
    bot = bot_start(bot=Bot.objects.get(pk=bot.pk))
    assert bot.last_candle_ms is None
    result = bot_tick(bot_id=bot.pk, clock=clock)

    # then: no take-profit on highs from before the position was bought: its trigger order is
    # placed and rests on the exchange, nothing sold
    assert result.outcome == "traded"
    orders = bot.orders.order_by("id").values_list("side", "order_type", "status")
    assert list(orders) == [("buy", "market", "closed"), ("sell", "take_profit_market", "open")]
    assert not bot.trades.filter(side="sell").exists()


class _Bitget:
    """Bitget's spot API for one classic (not unified) account, as ccxt calls it: a ticker at
    ``price``, ``usdt`` free, and market orders that fill at once at the price, with the fee
    charged in the currency bought (Bitget's way). Like Bitget, placing an order answers with
    its ids only; its fill is read with ``orderInfo``."""

    def __init__(self, price: Decimal, usdt: Decimal) -> None:
        self.price, self.usdt = price, usdt
        self.orders: dict[str, dict[str, Any]] = {}  # by clientOid
        self.paths: list[str] = []

    @staticmethod
    def ok(request: requests.PreparedRequest, data: Any) -> requests.Response:
        return json_response(request, 200, {"code": "00000", "msg": "success", "data": data})

    def __call__(self, request: requests.PreparedRequest) -> requests.Response:
        path = urlsplit(request.url or "").path
        self.paths.append(path)
        if path == "/api/v3/account/settings":  # ccxt's probe for a unified account
            return json_response(request, 400, bitget_error("40084", "not a unified account"))
        if path == "/api/v2/spot/market/tickers":
            return self.ok(request, _ticker_at(self.price)["data"])
        if path == "/api/v2/spot/trade/unfilled-orders":
            live = [o for o in self.orders.values() if o["status"] == "live"]
            return self.ok(request, [{**o, "priceAvg": o["price"], "basePrice": "0"} for o in live])
        if path == "/api/v2/spot/trade/cancel-order":
            order_id = json.loads(request.body or "{}")["orderId"]
            [order] = [o for o in self.orders.values() if o["orderId"] == order_id]
            order["status"] = "cancelled"
            return self.ok(request, {"orderId": order_id, "clientOid": order["clientOid"]})
        if path == "/api/v2/spot/account/assets":
            coin = {"coin": "USDT", "available": str(self.usdt), "frozen": "0", "locked": "0",
                    "limitAvailable": "0", "uTime": "1700000000000"}  # fmt: skip
            return self.ok(request, [coin])
        if path == "/api/v2/spot/trade/place-order":
            return self._place(request)
        if path == "/api/v2/spot/trade/orderInfo":
            cid = parse_qs(urlsplit(request.url or "").query)["clientOid"][0]
            return self.ok(request, [self.orders[cid]] if cid in self.orders else [])
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    def rest(self, cid: str, price: str, size: str) -> dict[str, Any]:
        """A buy limit order resting on the book (placed before the books knew of it)."""
        order = {
            "symbol": "BTCUSDT", "orderId": str(9000 + len(self.orders)), "clientOid": cid,
            "price": price, "size": size, "orderType": "limit", "side": "buy", "status": "live",
            "priceAvg": "0", "baseVolume": "0", "quoteVolume": "0", "cTime": "1700000000000",
            "uTime": "1700000000000", "force": "gtc",
        }  # fmt: skip
        self.orders[cid] = order
        return order

    def _place(self, request: requests.PreparedRequest) -> requests.Response:
        body = json.loads(request.body or "{}")
        assert (body["orderType"], body["side"]) == ("market", "buy")
        cost = Decimal(body["size"])  # a market buy is sized in USDT
        filled = (cost / self.price).quantize(Decimal("0.000001"))
        fee = (filled * Decimal("0.002")).quantize(Decimal("0.00000001"))
        order_id = str(9000 + len(self.orders))
        self.orders[body["clientOid"]] = {
            "symbol": "BTCUSDT", "orderId": order_id, "clientOid": body["clientOid"],
            "size": str(cost), "orderType": "market", "side": "buy", "status": "filled",
            "priceAvg": str(self.price), "baseVolume": str(filled),
            "quoteVolume": str(filled * self.price), "cTime": "1700000000000",
            "uTime": "1700000000100", "force": "gtc",
            "feeDetail": json.dumps({"BTC": {"feeCoinCode": "BTC", "totalFee": str(-fee)}}),
        }  # fmt: skip
        return self.ok(request, {"orderId": order_id, "clientOid": body["clientOid"]})


def test_a_live_market_order_is_booked_in_the_tick_that_sent_it(
    rows: list[Any], bitget_bot: StartBitget
) -> None:
    # given: a live account on Bitget, through ccxt's own request and response code
    bitget, bot = bitget_bot(_Bitget)
    Scripted.target = 1

    result = bot_tick(bot_id=bot.pk, clock=_live_clock(rows))

    # then: the order, its fill and the position are in the books now, not a candle later
    assert (result.outcome, result.orders) == ("traded", 1)
    assert "/api/v2/spot/trade/place-order" in bitget.paths
    [placed] = bitget.orders.values()
    order = Order.objects.get(bot=bot)
    assert (order.status, order.exchange_order_id) == (Order.Status.CLOSED, placed["orderId"])
    assert order.filled_qty == Decimal(placed["baseVolume"])
    [trade] = Trade.objects.filter(bot=bot)
    assert trade.qty == order.filled_qty
    fee = -Decimal(json.loads(placed["feeDetail"])["BTC"]["totalFee"])
    position = Position.objects.get(bot=bot)
    assert position.qty == order.filled_qty - fee  # Bitget kept its fee in BTC
    # the next tick finds nothing left to adopt and sends nothing
    assert bot_tick(bot_id=bot.pk, clock=_live_clock(rows)).outcome == "waiting"
    assert Trade.objects.filter(bot=bot).count() == 1
    assert len(bitget.orders) == 1


class _LaggingBitget(_Bitget):
    """Bitget that took an order whose answer was lost, does not show it for one more read,
    and refuses a second order under the same clientOid (its "Client_oid check error")."""

    def __init__(self, price: Decimal, usdt: Decimal) -> None:
        super().__init__(price, usdt)
        self.hidden_reads = 1

    def __call__(self, request: requests.PreparedRequest) -> requests.Response:
        path = urlsplit(request.url or "").path
        if path == "/api/v2/spot/trade/orderInfo" and self.hidden_reads:
            self.hidden_reads -= 1
            self.paths.append(path)
            return self.ok(request, [])
        if path == "/api/v2/spot/trade/place-order":
            cid = json.loads(request.body or "{}")["clientOid"]
            if cid in self.orders:
                self.paths.append(path)
                return json_response(request, 400, bitget_error("40500", "Client_oid check error"))
        return super().__call__(request)


def test_a_lost_live_order_the_exchange_shows_late_is_adopted_not_doubled(
    rows: list[Any], bitget_bot: StartBitget
) -> None:
    # given: a tick sent a buy and died before recording it; Bitget has the order, but its
    # order lookup does not show it yet
    bitget, bot = bitget_bot(_LaggingBitget)
    Scripted.target = 1
    cid = client_order_id(bot.pk, rows[-1].open_time, "buy")
    Order.objects.create(
        bot=bot, client_order_id=cid, symbol=SYMBOL, side="buy", order_type="market",
        qty=Decimal("0.001"), reason="signal", candle_ms=rows[-1].open_time,
    )  # fmt: skip
    quote = Decimal("100")
    request = requests.Request(
        "POST", "https://api.bitget.com/api/v2/spot/trade/place-order",
        data=json.dumps({"clientOid": cid, "orderType": "market", "side": "buy",
                         "size": str(quote)}),
    ).prepare()  # fmt: skip
    bitget._place(request)

    # when: the next tick reconciles (sees nothing yet), decides again and re-sends the same id
    result = bot_tick(bot_id=bot.pk, clock=_live_clock(rows))

    # then: Bitget refuses the duplicate, the tick reads the first order back and adopts it
    assert result.outcome == "traded"
    assert len(bitget.orders) == 1
    [order] = Order.objects.filter(bot=bot)
    assert (order.client_order_id, order.status) == (cid, Order.Status.CLOSED)
    assert Trade.objects.filter(bot=bot).count() == 1
    assert bot.refresh_from_db() is None
    assert bot.status == Bot.Status.RUNNING


def test_a_live_cancel_is_booked_in_the_tick_that_sent_it(
    rows: list[Any], bitget_bot: StartBitget
) -> None:
    # given: an order of the bot resting on Bitget, missing from the books
    bitget, bot = bitget_bot(_Bitget)
    resting = bitget.rest(bot_order_prefix(bot.pk) + "restored-1", price="10000", size="0.01")

    # when: a tick adopts it and, trading with market orders only, cancels it
    result = bot_tick(bot_id=bot.pk, clock=_live_clock(rows))

    # then: Bitget cancelled it, and the books say so now
    assert result.outcome == "held"
    assert resting["status"] == "cancelled"
    order = Order.objects.get(bot=bot)
    assert (order.client_order_id, order.reason) == (resting["clientOid"], "adopted")
    assert (order.status, order.exchange_order_id) == (Order.Status.CANCELED, resting["orderId"])
    assert order.price == Decimal(10_000)


# --- refusals -----------------------------------------------------------------------------------


def skipped(result: Any, bot: Bot, kind: str) -> BotEvent:
    """The event of ``kind`` that says why the tick of ``result`` skipped its order; none was
    stored or sent."""
    assert result.outcome == "skipped"
    assert not Order.objects.exists()
    assert not PaperOrder.objects.exists()
    return bot.events.get(kind=kind)


def test_an_entry_below_the_minimum_is_an_event_and_no_order(user: Any, rows: list[Any]) -> None:
    runner = scripted_bot(user, paper_account(user, usdt="0.5"), start_ms=rows[WARM].open_time)
    runner.start()
    Scripted.target = 1

    result = runner.tick()

    event = skipped(result, runner.bot, "below_minimum")
    assert event.level == BotEvent.Level.WARNING
    assert "minimum cost of 1 USDT" in event.message
    assert event.data["skip"] == "below_minimum"
    assert runner.refresh().status == Bot.Status.RUNNING


def test_a_quote_order_above_the_balance_is_an_event_and_no_order(
    user: Any, rows: list[Any]
) -> None:
    runner = scripted_bot(
        user, paper_account(user, usdt="50"), start_ms=rows[WARM].open_time,
        order_size_kind="quote", order_size=Decimal(100),
    )  # fmt: skip
    runner.start()
    Scripted.target = 1

    result = runner.tick()

    event = skipped(result, runner.bot, "insufficient_funds")
    assert "100 USDT" in event.message
    assert paper_free(runner.bot.exchange_account, "USDT") == Decimal(50)


def test_an_all_in_entry_is_sized_with_the_paper_accounts_own_taker_fee(
    user: Any, rows: list[Any]
) -> None:
    # a paper account charging 1 % instead of the market's 0.2 %
    account = paper_account(user, paper_taker_fee=Decimal("0.01"))
    runner = scripted_bot(user, account, start_ms=rows[WARM].open_time)
    runner.start()
    Scripted.target = 1

    result = runner.tick()

    assert (result.outcome, result.orders) == ("traded", 1)
    order = Order.objects.get(bot=runner.bot)
    assert order.status == Order.Status.CLOSED
    left = paper_free(account, "USDT")
    assert Decimal(0) <= left < Decimal(1)  # all in, fee included
    assert "insufficient_funds" not in kinds(runner.bot)


# --- a failing strategy -------------------------------------------------------------------------


def test_a_strategy_exception_stops_that_bot_in_error_and_not_the_others(
    user: Any, rows: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    broken = replay_bot(
        user, paper_account(user, label="Broken"), start_ms=rows[WARM].open_time,
        strategy="test_exploding", params={}, name="broken",
    )  # fmt: skip
    healthy = scripted_bot(
        user, paper_account(user, label="Healthy"), start_ms=rows[WARM].open_time
    )
    broken.start()
    healthy.start()
    Scripted.target = 1
    caplog.set_level(logging.INFO)

    assert broken.tick().outcome == "error"
    assert healthy.tick().outcome == "traded"

    bot = broken.refresh()
    assert bot.status == Bot.Status.ERROR
    assert bot.last_error == "ExplodingStrategyError: indicator blew up on 40 candles"
    event = bot.events.get(kind="tick_failed")
    assert event.level == BotEvent.Level.ERROR
    assert "Traceback" in event.data["traceback"]
    assert "in target_position" in event.data["traceback"]
    assert "ExplodingStrategyError" in event.data["traceback"]
    [failure] = [r for r in caplog.records if r.getMessage() == "bot.tick_failed"]
    assert failure.levelno == logging.ERROR
    assert failure.bot_id == bot.pk
    assert failure.exc_info is not None
    assert "in target_position" in caplog.text
    assert not Order.objects.filter(bot=bot).exists()

    # the next candle: the broken bot is not ticked, the healthy one keeps trading
    Scripted.target = 0
    assert broken.next_candle().outcome == "idle"
    sold = healthy.next_candle()
    assert (sold.outcome, sold.orders) == ("traded", 1)
    assert healthy.refresh().status == Bot.Status.RUNNING
    traded = Order.objects.filter(bot=healthy.bot).order_by("id")
    assert list(traded.values_list("side", flat=True)) == ["buy", "sell"]
