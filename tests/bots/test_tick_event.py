"""``bot.tick``: every tick that ran announces when it ran, when the bot is due again and the
newest candle it has acted on, so that the bot's page and the bots list update "Last tick"
without a reload; by the single tick and by the batch's quick path alike."""

from __future__ import annotations

from typing import Any

import pytest

from bots.events import bot_snapshot
from bots.models import Bot
from bots.services import bot_start, bot_tick, bots_tick_batch
from tests.backtests.worker_helpers import group_listener  # noqa: F401 - a fixture
from tests.bots.bot_helpers import ManualClock, paper_account, scripted_bot, store_candles

pytestmark = pytest.mark.usefixtures("scripted_strategies")


def ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def published(listener: Any, kind: str) -> list[dict[str, Any]]:
    messages = listener.receive(seconds=1)
    events = [e for m in messages for e in (m.get("events") or [m["event"]])]
    return [e for e in events if e["type"] == kind]


def assert_announces(bot: Bot, ticks: list[dict[str, Any]]) -> None:
    bot.refresh_from_db()
    assert len(ticks) == 1
    assert ticks[0]["channel"] == f"bot:{bot.pk}"
    assert ticks[0]["data"] == {
        "last_tick_at": ms(bot.last_tick_at),
        "next_tick_at": ms(bot.next_tick_at),
        "last_candle_ms": bot.last_candle_ms,
    }
    assert bot.last_candle_ms is not None


def test_a_tick_announces_its_time_the_next_one_and_its_candle(
    user: Any,
    group_listener: Any,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a started replay bot, listened to on its group
    rows = store_candles(2000, 60)
    runner = scripted_bot(user, paper_account(user), start_ms=rows[40].open_time)
    runner.start()
    group_listener.join(f"bot-{runner.bot.pk}")
    # when it ticks
    with django_capture_on_commit_callbacks(execute=True):
        runner.next_candle()
    # then one bot.tick says what the row now holds, as the snapshot of a page opened later does
    assert_announces(runner.bot, published(group_listener, "bot.tick"))
    snapshot = bot_snapshot(user=user, pk=runner.bot.pk)
    assert snapshot["last_tick_at"] == ms(runner.bot.last_tick_at)
    assert snapshot["next_tick_at"] == ms(runner.bot.next_tick_at)
    assert snapshot["last_candle_ms"] == runner.bot.last_candle_ms


def test_the_batchs_quick_path_announces_each_bots_tick(
    user: Any,
    group_listener: Any,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a running bot past its first tick (so that the batch may hold it on the quick path)
    rows = store_candles(2000, 60)
    clock = ManualClock()
    runner = scripted_bot(user, paper_account(user), start_ms=rows[40].open_time)
    bot = bot_start(bot=runner.bot, clock=clock)
    bot_tick(bot_id=bot.pk, clock=clock)
    group_listener.join(f"bot-{bot.pk}")
    clock.advance(1.0)
    # when the batch ticks it
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = bots_tick_batch(bot_ids=[bot.pk], clock=clock)
    # then it held, and announced its tick as the single tick does
    assert outcomes == {"held": 1}
    assert_announces(bot, published(group_listener, "bot.tick"))
