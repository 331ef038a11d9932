"""``GET /metrics`` and the metrics behind it (``tradingbot.metrics``), on the real Redis.

Each test keeps its metrics under a key prefix of its own, so that its counts start at zero and
no other test (or xdist worker) adds to them. Ticks, backtests and events run through their
real services; the queue depth is read from messages really sent through Celery's broker.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from backtests import services as backtest_services
from backtests.models import RunStatus
from bots.models import Bot, Order
from bots.order_ids import client_order_id
from bots.services import bot_start, bot_tick
from markets.exchanges import errors
from markets.exchanges.ccxt_exchange import CcxtExchange
from tests.backtests.conftest import sample_candles, strategy_catalogue  # noqa: F401 - fixtures
from tests.backtests.run_helpers import create_backtest, run_sweep
from tests.bots.bot_helpers import (
    SYMBOL,
    Scripted,
    paper_account,
    scripted_bot,
    store_candles,
    strategies_for_tests,
)
from tests.markets.ccxt_replay import StubAdapter, answer, block_network
from tradingbot import metrics
from tradingbot.celery import QUEUES, app
from tradingbot.events import object_event, object_groups, publish_now
from tradingbot.redis import get_redis

pytestmark = pytest.mark.django_db

EVERY_METRIC = {
    "tradingbot_bots": "gauge",
    "tradingbot_tick_latency_seconds": "histogram",
    "tradingbot_orders": "counter",
    "tradingbot_exchange_errors": "counter",
    "tradingbot_celery_queue_depth": "gauge",
    "tradingbot_backtest_duration_seconds": "histogram",
    "tradingbot_sweep_duration_seconds": "histogram",
    "tradingbot_websocket_connections": "gauge",
    "tradingbot_events_published": "counter",
}
OUTSIDER = "203.0.113.7"  # a documentation address: not the loopback


@pytest.fixture(autouse=True)
def own_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    prefix = f"tb-metrics-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(metrics, "KEY_PREFIX", prefix)
    yield prefix
    client = get_redis()
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def scrape(client: Client | None = None, **extra: Any) -> dict[str, Any]:
    """GET /metrics, parsed: ``{family name: family}``."""
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=")
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family for family in families}


def sample(families: dict[str, Any], name: str, **labels: str) -> float:
    """The value of sample ``name`` (``..._count``, ``..._bucket``...) with exactly ``labels``."""
    family = families[re.sub(r"_(total|count|sum|bucket)$", "", name)]
    values = [s.value for s in family.samples if s.name == name and s.labels == labels]
    assert len(values) == 1, (name, labels, family.samples)
    return float(values[0])


# --- the page -----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_it_serves_every_metric_as_prometheus_text_to_the_loopback_address(address: str) -> None:
    families = scrape(REMOTE_ADDR=address)

    assert {name: families[name].type for name in EVERY_METRIC} == EVERY_METRIC
    assert sample(families, "tradingbot_metrics_store_up") == 1
    assert sample(families, "tradingbot_orders_total", outcome="filled") == 0


def test_it_is_a_404_for_anyone_else_and_200_for_staff(
    client: Client, trader_client: Client, staff_client: Client
) -> None:
    anonymous = client.get("/metrics", REMOTE_ADDR=OUTSIDER)
    trader = trader_client.get("/metrics", REMOTE_ADDR=OUTSIDER)
    staff = staff_client.get("/metrics", REMOTE_ADDR=OUTSIDER)

    assert (anonymous.status_code, trader.status_code, staff.status_code) == (404, 404, 200)
    assert b"tradingbot_" not in anonymous.content + trader.content
    assert b"tradingbot_bots" in staff.content


def test_it_counts_the_bots_by_status(user: Any) -> None:
    with strategies_for_tests():
        rows = store_candles(2000, 60)
        running = scripted_bot(user, paper_account(user), start_ms=rows[40].open_time)
        running.start()
        scripted_bot(
            user, paper_account(user, label="Other"), start_ms=rows[40].open_time, name="idle"
        )

    families = scrape()

    assert sample(families, "tradingbot_bots", status=Bot.Status.RUNNING) == 1
    assert sample(families, "tradingbot_bots", status=Bot.Status.STOPPED) == 1
    assert sample(families, "tradingbot_bots", status=Bot.Status.ERROR) == 0


# --- what the platform reports ------------------------------------------------------------------


def test_a_tick_moves_the_tick_latency_and_the_orders(user: Any) -> None:
    # given: a replay bot on the real clock, started now: its first candle closes at its start
    with strategies_for_tests():
        rows = store_candles(2000, 60)
        runner = scripted_bot(user, paper_account(user), start_ms=rows[40].open_time, speed=0.5)
        bot = bot_start(bot=runner.bot, clock=time.time)
        Scripted.target = 1

        # when
        result = bot_tick(bot_id=bot.pk, clock=time.time)
        bot_tick(bot_id=bot.pk, clock=time.time)  # no new candle: nothing to time

    # then: one tick timed, within seconds of the candle's close; one order filled
    assert result.outcome == "traded"
    families = scrape()
    latency = "tradingbot_tick_latency_seconds"
    assert sample(families, f"{latency}_count", source="replay") == 1
    assert 0 <= sample(families, f"{latency}_sum", source="replay") < 10
    assert sample(families, f"{latency}_bucket", source="replay", le="10.0") == 1
    assert sample(families, "tradingbot_orders_total", outcome="filled") == 1
    assert sample(families, "tradingbot_orders_total", outcome="rejected") == 0


def test_an_order_that_never_reached_the_exchange_counts_as_failed(user: Any) -> None:
    # given: a buy was written, then its worker died before sending it
    with strategies_for_tests():
        rows = store_candles(2000, 60)
        runner = scripted_bot(user, paper_account(user), start_ms=rows[40].open_time)
        runner.start()
        candle_ms = rows[39].open_time
        Order.objects.create(
            bot=runner.bot, client_order_id=client_order_id(runner.bot.pk, candle_ms, "buy"),
            symbol=SYMBOL, side="buy", order_type="market", qty=Decimal("0.1"),
            reason="signal", candle_ms=candle_ms,
        )  # fmt: skip
        Scripted.target = 1

        # when: the next tick finds the exchange never got it, and decides again
        assert runner.tick().outcome == "traded"

    # then: the lost one failed, the new one filled
    families = scrape()
    assert sample(families, "tradingbot_orders_total", outcome="failed") == 1
    assert sample(families, "tradingbot_orders_total", outcome="filled") == 1


def test_an_exchange_error_is_counted_by_exchange_and_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block_network(monkeypatch)
    exchange = CcxtExchange.public("bitget")
    busy = {"code": "40604", "msg": "Server is busy", "requestTime": 1, "data": None}
    StubAdapter(answer(503, busy)).mount_on(exchange.client.session)

    for _ in range(3):
        with pytest.raises(errors.TransientExchangeError):
            exchange.fetch_ticker("BTC/USDT")

    families = scrape()
    errors_total = "tradingbot_exchange_errors_total"
    assert sample(families, errors_total, exchange="bitget", kind="exchange_unavailable") == 3


def test_a_backtest_run_moves_its_duration_histogram(user: Any, sample_candles: Any) -> None:  # noqa: F811
    backtest = create_backtest(user, sample_candles)

    status = backtest_services.backtest_execute(backtest_id=backtest.pk)

    assert status == RunStatus.DONE
    families = scrape()
    duration = "tradingbot_backtest_duration_seconds"
    assert sample(families, f"{duration}_count", status="done") == 1
    assert 0 < sample(families, f"{duration}_sum", status="done") < 300


def test_a_finished_sweep_moves_its_duration_histogram(user: Any, sample_candles: Any) -> None:  # noqa: F811
    sweep = run_sweep(user, sample_candles)

    assert sweep.status == RunStatus.DONE
    families = scrape()
    duration = "tradingbot_sweep_duration_seconds"
    assert sample(families, f"{duration}_count", status="done") == 1
    assert 0 < sample(families, f"{duration}_sum", status="done") < 300


def test_published_events_are_counted_by_channel_kind() -> None:
    for pk in (1, 2):
        event = object_event("bot", "status", object_id=pk, owner_id=1, data={})
        assert publish_now(object_groups("bot", pk, 1), event)
    candle = {"type": "candles.candle", "channel": "candles:bitget:BTC/USDT:5m", "data": {}}
    assert publish_now(["metrics-test-group"], candle)

    families = scrape()

    assert sample(families, "tradingbot_events_published_total", kind="bot") == 2
    assert sample(families, "tradingbot_events_published_total", kind="candles") == 1


def test_a_queue_depth_is_the_number_of_messages_waiting_in_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: a queue no worker consumes, with messages at two priorities
    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(metrics, "EXTRA_QUEUES", [queue])
    try:
        for n in range(3):
            app.send_task("tests.metrics.nothing", args=(n,), queue=queue)
        app.send_task("tests.metrics.nothing", args=(9,), queue=queue, priority=7)

        families = scrape()
    finally:
        client = get_redis()
        client.delete(*client.keys(f"{queue}*"), f"_kombu.binding.{queue}")

    # then: all four are counted, and every queue of the platform is shown
    assert sample(families, "tradingbot_celery_queue_depth", queue=queue) == 4
    shown = {s.labels["queue"] for s in families["tradingbot_celery_queue_depth"].samples}
    assert shown == {*QUEUES, queue}


def test_open_connections_are_summed_over_processes_and_a_dead_one_drops_out(
    own_prefix: str,
) -> None:
    # given: this process has two connections, one closed since; another process left a count
    metrics.WS_CONNECTIONS.opened()
    metrics.WS_CONNECTIONS.opened()
    metrics.WS_CONNECTIONS.closed()
    elsewhere = f"{own_prefix}:ws:elsewhere:4242"
    get_redis().set(elsewhere, 3, ex=metrics.WS_KEY_TTL_SECONDS)
    try:
        assert wait_for_connections(4)
        # when: the other process stops refreshing its key (it was killed): its TTL runs out
        get_redis().pexpire(elsewhere, 100)
        # then: its connections are gone from the sum
        assert wait_for_connections(1)
    finally:
        metrics.WS_CONNECTIONS.closed()
    assert wait_for_connections(0)


def wait_for_connections(expected: float, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sample(scrape(), "tradingbot_websocket_connections") == expected:
            return True
        time.sleep(0.05)
    return False


# --- a Redis that fails ---------------------------------------------------------------------------


def test_a_redis_failure_during_an_observation_neither_raises_nor_floods_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, user: Any
) -> None:
    # given: the metrics' Redis is a socket nobody listens on
    unreachable = metrics.metrics_client(f"unix:///tmp/no-redis-{uuid.uuid4().hex}.sock")
    monkeypatch.setattr(metrics, "_client", lambda: unreachable)
    monkeypatch.setattr(metrics, "_health", metrics._WriteHealth())  # no outage carried over
    caplog.set_level(logging.INFO, logger="tradingbot.metrics")

    # when: observations of every kind, and a whole tick
    metrics.ORDERS.inc(outcome="filled")
    metrics.TICK_LATENCY.observe(0.3, source="live")
    metrics.EVENTS_PUBLISHED.inc_each([{"kind": "bot"}])
    with strategies_for_tests():
        rows = store_candles(2000, 60)
        runner = scripted_bot(user, paper_account(user), start_ms=rows[40].open_time)
        runner.start()
        Scripted.target = 1
        result = runner.tick()

    # then: nothing raised, the tick traded, the failures were counted and logged once
    assert result.outcome == "traded"
    assert metrics._health.errors >= 5
    failed = [r for r in caplog.records if r.getMessage() == "metrics.write_failed"]
    assert len(failed) == 1
    # and the page still answers, saying the store is down
    families = scrape()
    assert sample(families, "tradingbot_metrics_store_up") == 0
    assert sample(families, "tradingbot_metrics_write_errors_total") >= 5


def test_the_writes_recover_when_redis_answers_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    working = metrics._client
    unreachable = metrics.metrics_client(f"unix:///tmp/no-redis-{uuid.uuid4().hex}.sock")
    monkeypatch.setattr(metrics, "_client", lambda: unreachable)
    monkeypatch.setattr(metrics, "_health", metrics._WriteHealth())
    caplog.set_level(logging.INFO, logger="tradingbot.metrics")
    metrics.ORDERS.inc(outcome="failed")  # lost
    monkeypatch.setattr(metrics, "_client", working)

    metrics.ORDERS.inc(outcome="failed")

    assert sample(scrape(), "tradingbot_orders_total", outcome="failed") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["metrics.write_failed", "metrics.write_recovered"]


def test_a_stored_series_it_cannot_read_leaves_the_rest_of_the_scrape(own_prefix: str) -> None:
    # given: a histogram field written by another version (no bucket, count or sum name)
    get_redis().hset(f"{own_prefix}:tradingbot_backtest_duration_seconds", '["done"]', 1)
    metrics.ORDERS.inc(outcome="filled")

    families = scrape()

    assert "tradingbot_backtest_duration_seconds" not in families
    assert sample(families, "tradingbot_orders_total", outcome="filled") == 1
