"""The batch tick: bots that hold are recorded together, every other bot gets the full tick.

Scripted replay bots on one shared manual clock (see ``tests/bots/bot_helpers.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bots.models import Bot, BotEvent, Order, Position
from bots.services import bot_start, bot_tick, bots_tick_batch
from tests.bots.bot_helpers import (
    ManualClock,
    Scripted,
    paper_account,
    scripted_bot,
    store_candles,
)

pytestmark = pytest.mark.usefixtures("scripted_strategies")

FIRST, COUNT, WARM = 2000, 80, 40
FLEET = 20


@pytest.fixture
def fleet(user: Any) -> tuple[list[Bot], ManualClock, list[Any]]:
    """Running bots on one clock, each past its first tick (which looks for orders to adopt)."""
    rows = store_candles(FIRST, COUNT)
    clock = ManualClock()
    bots = []
    for n in range(FLEET):
        runner = scripted_bot(user, paper_account(user, label=f"P{n}"),
                              start_ms=rows[WARM].open_time, name=f"bot {n}")  # fmt: skip
        bot = bot_start(bot=runner.bot, clock=clock)
        bot_tick(bot_id=bot.pk, clock=clock)
        bots.append(bot)
    return bots, clock, rows


def next_candle(clock: ManualClock) -> None:
    clock.advance(1.0)  # the helpers' bots replay 60 candles a minute


def test_bots_that_hold_are_ticked_in_a_few_queries_for_the_whole_batch(fleet: Any) -> None:
    bots, clock, _ = fleet
    ids = [b.pk for b in bots]
    events_before = BotEvent.objects.count()
    next_candle(clock)

    with CaptureQueriesContext(connection) as queries:
        outcomes = bots_tick_batch(bot_ids=ids, clock=clock)

    assert outcomes == {"held": FLEET}
    # claim, read bots, their orders and positions, then events, positions and bots written back
    # (plus the transaction's own statements): not ten a bot
    assert len(queries.captured_queries) <= 12, [q["sql"][:80] for q in queries]
    rows = Bot.objects.filter(pk__in=ids)
    assert {b.last_candle_ms for b in rows} == {bots[0].refresh_from_db() or bots[0].last_candle_ms}
    assert all(b.tick_lease_until is None and b.tick_lease_token == "" for b in rows)
    # due again when the replay's next candle closes: one candle (a second) on the bots' clock
    next_close = datetime.fromtimestamp(clock.now + 1.0, tz=UTC)
    assert {b.next_tick_at for b in rows} == {next_close}
    assert BotEvent.objects.count() == events_before + FLEET
    assert set(BotEvent.objects.order_by("-id")[:FLEET].values_list("kind", flat=True)) == {"tick"}
    assert all(p.mark_price is not None for p in Position.objects.filter(bot__in=ids))


def test_a_bot_that_trades_gets_the_full_tick_inside_the_batch(fleet: Any) -> None:
    bots, clock, _ = fleet
    ids = [b.pk for b in bots]
    Scripted.target = 1  # every bot buys on this candle
    next_candle(clock)

    outcomes = bots_tick_batch(bot_ids=ids, clock=clock)

    assert outcomes == {"traded": FLEET}
    assert Order.objects.filter(bot_id__in=ids, status=Order.Status.CLOSED).count() == FLEET
    Scripted.target = 1
    next_candle(clock)
    assert bots_tick_batch(bot_ids=ids, clock=clock) == {"held": FLEET}  # holding: fast again
    assert Order.objects.filter(bot_id__in=ids).count() == FLEET
    # a holding bot's position is marked to the new close by the fast path
    for position in Position.objects.filter(bot_id__in=ids):
        assert position.qty > 0
        assert (
            position.unrealized_pnl
            == position.qty * (position.mark_price - position.entry_price) - position.entry_fees
        )


def test_a_held_lease_or_a_stopped_bot_is_left_alone(fleet: Any) -> None:
    bots, clock, _ = fleet
    busy, stopped, *rest = bots
    Bot.objects.filter(pk=busy.pk).update(
        tick_lease_until=timezone.now() + timedelta(seconds=30), tick_lease_token="other"
    )
    Bot.objects.filter(pk=stopped.pk).update(status=Bot.Status.STOPPED)
    next_candle(clock)

    outcomes = bots_tick_batch(bot_ids=[b.pk for b in bots], clock=clock)

    assert outcomes == {"busy": 2, "held": FLEET - 2}
    busy.refresh_from_db()
    assert busy.tick_lease_token == "other"  # not taken from the tick that holds it
    last = Bot.objects.get(pk=rest[0].pk).last_candle_ms
    assert Bot.objects.get(pk=busy.pk).last_candle_ms != last
    assert Bot.objects.get(pk=stopped.pk).last_candle_ms != last


def test_a_bot_with_an_open_order_is_reconciled_by_the_full_tick(fleet: Any) -> None:
    bots, clock, rows = fleet
    first = bots[0]
    Order.objects.create(
        bot=first, client_order_id=f"tb{first.pk}-lost", symbol=first.symbol, side="buy",
        order_type="market", qty="0.001", reason="signal", candle_ms=rows[WARM].open_time,
    )  # fmt: skip
    next_candle(clock)

    outcomes = bots_tick_batch(bot_ids=[b.pk for b in bots], clock=clock)

    # the pending order never reached the paper exchange: the full tick's reconcile removed it
    assert outcomes == {"held": FLEET}
    assert not Order.objects.filter(bot=first).exists()
    assert BotEvent.objects.filter(bot=first, kind="order_not_found").exists()


def test_a_failure_on_the_quick_path_falls_back_to_the_full_tick(
    fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bots, clock, _ = fleet
    from bots.services import batch

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("candle store unreadable")

    monkeypatch.setattr(batch.BotMarket, "closed_candles", unreadable)
    next_candle(clock)

    outcomes = bots_tick_batch(bot_ids=[b.pk for b in bots], clock=clock)

    # the full tick met the same failure and recorded it on each bot: no lease is left held
    assert outcomes == {"error": FLEET}
    assert not Bot.objects.filter(pk__in=[b.pk for b in bots], tick_lease_until__isnull=False)
    assert set(
        Bot.objects.filter(pk__in=[b.pk for b in bots]).values_list("status", flat=True)
    ) == {Bot.Status.ERROR}
