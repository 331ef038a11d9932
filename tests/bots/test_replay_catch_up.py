"""A replay bot that falls behind its schedule catches up candle by candle, a bounded number of
candles per tick (``bots.services.ticks._catch_up``), and resumes where it stopped.

The bots replay stored candles on a ``ManualClock``: moving it on by k candles is k candles of
an outage (worker and beat down) or of lagging ticks. The trades of such a bot are compared to
the backtest's in ``test_parity``; here: how many candles a tick takes, when the bot is due
again, what ends a replay, and what a tick that dies half-way through leaves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from bots.models import Bot, Order
from bots.services import bot_start
from strategies import registry as strategy_registry
from strategies.base import Strategy
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import (
    STEP_MS,
    ReplayBot,
    paper_account,
    scripted_bot,
    store_candles,
)
from tests.bots.worker_ticks_helpers import decided_candles

pytestmark = pytest.mark.usefixtures("scripted_strategies")

FIRST, COUNT, WARM = 2000, 200, 40  # stored rows, and the row the replay starts at
N = 10  # BOT_REPLAY_CATCH_UP_CANDLES in these tests


@pytest.fixture
def rows(db: Any, settings: Any) -> list[Any]:
    settings.BOT_REPLAY_CATCH_UP_CANDLES = N
    return store_candles(FIRST, COUNT)


@pytest.fixture
def runner(user: Any, rows: list[Any]) -> ReplayBot:
    """A started scripted replay bot (flat signal), having acted on its first candle, the one
    before the replay's start (``rows[WARM - 1]``)."""
    runner = scripted_bot(user, paper_account(user), start_ms=rows[WARM].open_time)
    runner.start()
    assert runner.tick().candle_ms == rows[WARM - 1].open_time
    return runner


def next_tick_at(runner: ReplayBot) -> float:
    """When the bot is due next, in the seconds of its (manual) clock."""
    due = runner.refresh().next_tick_at
    assert due is not None
    return due.timestamp()


def test_a_bot_3n_candles_behind_catches_up_n_candles_a_tick_in_order(
    runner: ReplayBot, rows: list[Any]
) -> None:
    # given: 3N candles of its schedule went by without a tick (an outage)
    runner.clock.advance(3 * N * runner.seconds_per_candle)

    # when: it ticks three times
    results = [runner.tick() for _ in range(3)]

    # then: each tick acted on the next N candles, none skipped
    assert [(r.outcome, r.candles) for r in results] == [("held", N)] * 3
    assert [r.candle_ms for r in results] == [rows[WARM - 1 + k * N].open_time for k in (1, 2, 3)]
    assert decided_candles(runner.bot) == [r.open_time for r in rows[WARM - 1 : WARM + 3 * N]]
    # and it is caught up: the next tick has nothing to do
    assert runner.tick().outcome == "waiting"


def test_a_bot_behind_is_due_at_once_and_a_caught_up_one_when_its_next_candle_closes(
    runner: ReplayBot,
) -> None:
    # given: 2N - 3 candles and a quarter of one went by without a tick (a candle a second)
    runner.clock.advance((2 * N - 3 + 0.25) * runner.seconds_per_candle)

    # when: it ticks once
    first = runner.tick()
    # then: N candles, and the rest are due at once
    assert first.candles == N
    assert next_tick_at(runner) == runner.clock.now
    # when: it ticks again
    second = runner.tick()
    # then: the N - 3 left, and it is due when its schedule closes the next candle
    assert second.candles == N - 3
    next_close = runner.clock.now + 0.75 * runner.seconds_per_candle
    assert next_tick_at(runner) == pytest.approx(next_close)


def test_a_tick_acts_on_no_more_candles_than_a_quarter_of_its_lease_allows(
    runner: ReplayBot, settings: Any
) -> None:
    # given: a lease so short that a quarter of it is spent after the first candle
    settings.BOT_TICK_LEASE_SECONDS = 0
    runner.clock.advance(5 * runner.seconds_per_candle)

    # when
    results = [runner.tick() for _ in range(5)]

    # then: one candle a tick, each tick leaving the rest due at once
    assert [r.candles for r in results] == [1] * 5
    assert runner.tick().outcome == "waiting"


def test_a_replay_that_has_acted_on_its_last_candle_stops_saying_so(
    runner: ReplayBot, rows: list[Any]
) -> None:
    # given: its schedule far past the last stored candle
    runner.clock.advance(2 * COUNT * runner.seconds_per_candle)

    # when: it ticks until it stops
    outcomes = []
    while runner.refresh().status == Bot.Status.RUNNING:
        outcomes.append(runner.tick().outcome)
        assert len(outcomes) <= COUNT // N + 1

    # then: it acted on every candle to the last, then stopped with an event naming the end
    assert outcomes[-1] == "stopped"
    assert runner.bot.last_candle_ms == rows[-1].open_time
    assert decided_candles(runner.bot) == [r.open_time for r in rows[WARM - 1 :]]
    [ended] = runner.bot.events.filter(kind="replay_ended")
    end = datetime.fromtimestamp((rows[-1].open_time + STEP_MS) / 1000, tz=UTC)
    assert ended.message == (
        "Stopped by the system because the replay has run past the stored data: no 5m candle "
        f"of BTC/USDT on bitget opens at or after {end.isoformat().replace('+00:00', 'Z')}."
    )


def test_a_replay_waits_at_a_gap_in_its_data_and_goes_on_after_it(
    user: Any, rows: list[Any]
) -> None:
    # given: a bot whose data misses ten candles after the start
    from markets.models import Candle

    gap = [r.open_time for r in rows[WARM + 5 : WARM + 15]]
    Candle.objects.filter(open_time__in=gap).delete()
    runner = scripted_bot(user, paper_account(user), start_ms=rows[WARM].open_time)
    runner.start()
    # when: its schedule reaches into the gap, then past it
    runner.clock.advance(8 * runner.seconds_per_candle)
    into = [runner.tick(), runner.tick()]
    runner.clock.advance(12 * runner.seconds_per_candle)
    after = runner.tick()

    # then: it acts on the candles before the gap, waits in it (still running), and goes on
    assert [r.outcome for r in into] == ["held", "waiting"]
    assert runner.refresh().status == Bot.Status.RUNNING
    assert after.outcome == "held"
    expected = [r.open_time for r in rows[WARM - 1 : WARM + 20] if r.open_time not in gap]
    assert decided_candles(runner.bot) == expected


class _DiesOnce(Strategy):
    """Flat, but raises once on the candle opened at ``dies_at`` (a tick killed there)."""

    key = "test_dies_once"
    name = "Dies once (tests)"
    dies_at: int | None = None

    def target_position(self, candles: pd.DataFrame) -> pd.Series:
        if int(candles["open_time"].iloc[-1]) == type(self).dies_at:
            type(self).dies_at = None
            raise RuntimeError("killed mid-way")
        return pd.Series(0, index=candles.index)


def test_a_catch_up_that_dies_half_way_resumes_after_the_last_candle_it_acted_on(
    user: Any, rows: list[Any]
) -> None:
    # given: a bot behind by 3N candles, whose tick dies on the 5th of them
    previous = strategy_registry.active()
    strategy_registry.activate(strategy_registry.Registry([*previous, _DiesOnce]))
    try:
        strategy_catalogue_sync()
        runner = scripted_bot(user, paper_account(user), start_ms=rows[WARM].open_time)
        Bot.objects.filter(pk=runner.bot.pk).update(strategy_id=_DiesOnce.key)
        runner.refresh()
        runner.start()
        _DiesOnce.dies_at = rows[WARM + 4].open_time
        runner.clock.advance(3 * N * runner.seconds_per_candle)

        # when: it ticks; the tick dies (the bot goes to error); it is started again
        died = runner.tick()
        bot = runner.refresh()
        assert (died.outcome, bot.status) == ("error", Bot.Status.ERROR)
        bot_start(bot=bot, clock=runner.clock)
        resumed = [runner.tick(), runner.next_candle()]
    finally:
        strategy_registry.activate(previous)
        strategy_catalogue_sync()

    # then: the candles acted on before it died were kept, and it resumed on the candle it died
    # on (its schedule starts again there: the 3N candles are not raced through)
    assert decided_candles(runner.bot) == [r.open_time for r in rows[WARM - 1 : WARM + 5]]
    assert [r.outcome for r in resumed] == ["waiting", "held"]
    assert resumed[1].candle_ms == rows[WARM + 4].open_time
    assert not Order.objects.filter(bot=runner.bot).exists()
