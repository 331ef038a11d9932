"""Replays: the clock math by hand, and stored candles served as if they were arriving live."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from markets.exchanges.prices import ReplayEndedError, ReplayPrices
from markets.models import Candle
from markets.replay import ReplayFeed, replay_closed_candles, replay_next_candle

START = 1_704_067_200_000  # 2024-01-01 00:00 UTC
FIVE_MIN = 300_000
HOUR = 3_600_000


def feed(**overrides):
    settings = {"start_ms": START, "timeframe": "5m", "seconds_per_candle": 2.0,
                "started_at": 1000.0} | overrides  # fmt: skip
    return ReplayFeed(**settings)


# --- the clock ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "market_time"),
    [
        (1000.0, START),  # at the start: market time is the start
        (1001.9, START),  # 0.95 of a candle: not yet moved
        (1002.0, START + FIVE_MIN),  # one whole candle of 2 s
        (1007.5, START + 3 * FIVE_MIN),  # floor(7.5 / 2) = 3
        (1000.0 + 2 * 288, START + 86_400_000),  # a day of 5m candles in 576 s
        (990.0, START),  # before the start it waits at the start
    ],
)
def test_it_moves_market_time_by_whole_candles(now, market_time):
    assert feed().market_time(now) == market_time


def test_it_treats_the_newest_candle_before_market_time_as_closed_and_the_next_as_forming():
    # given: two candles into the replay (market time START + 10 min)
    replay, now = feed(), 1004.0
    # then
    assert replay.market_time(now) == START + 2 * FIVE_MIN
    assert replay.closed_until(now) == START + FIVE_MIN  # open + 5m <= market time
    assert replay.next_open_time(now) == START + 2 * FIVE_MIN
    assert replay.is_closed(START + FIVE_MIN, now)
    assert not replay.is_closed(START + 2 * FIVE_MIN, now)


def test_at_the_start_only_the_history_before_it_is_closed():
    replay = feed()
    assert replay.closed_until(1000.0) == START - FIVE_MIN
    assert replay.next_open_time(1000.0) == START


def test_a_higher_timeframe_candle_closes_only_when_all_of_it_has_been_replayed():
    replay = feed()
    eleven_candles, twelve_candles = 1000.0 + 11 * 2, 1000.0 + 12 * 2
    assert replay.closed_until(eleven_candles, "1h") == START - HOUR
    assert replay.next_open_time(eleven_candles, "1h") == START
    assert replay.closed_until(twelve_candles, "1h") == START
    assert replay.next_open_time(twelve_candles, "1h") == START + HOUR


def test_it_advances_exactly_on_the_tick_with_a_decimal_speed():
    # 1000.3 - 1000.0 is 0.2999999999999545 in floats; the replay counts 3 candles of 0.1 s
    replay = feed(seconds_per_candle=0.1)
    assert replay.market_time(1000.3) == START + 3 * FIVE_MIN
    assert replay.market_time(1000.29) == START + 2 * FIVE_MIN


def test_it_tells_how_long_until_the_next_candle():
    assert feed().seconds_until_next_candle(1003.5) == pytest.approx(0.5)
    assert feed().seconds_until_next_candle(1004.0) == pytest.approx(2.0)
    assert feed().seconds_until_next_candle(990.0) == pytest.approx(12.0)


def test_it_round_trips_through_a_json_safe_dict():
    replay = feed(seconds_per_candle=0.5)
    assert ReplayFeed.from_dict(replay.as_dict()) == replay


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seconds_per_candle": 0}, "speed must be positive"),
        ({"seconds_per_candle": -2.0}, "speed must be positive"),
        ({"seconds_per_candle": math.nan}, "seconds_per_candle must be finite"),
        ({"seconds_per_candle": "fast"}, "seconds_per_candle must be a number"),
        ({"timeframe": "7m"}, "unknown replay timeframe '7m'"),
        ({"start_ms": START + 1}, "not aligned to the 5m timeframe"),
        ({"start_ms": -FIVE_MIN}, "must not be negative"),
        ({"start_ms": 1.5}, "must be an integer"),
        ({"started_at": math.inf}, "started_at must be finite"),
    ],
)
def test_it_refuses_a_replay_it_cannot_run(overrides, message):
    with pytest.raises(ValueError, match=message):
        feed(**overrides)


def test_from_dict_names_the_missing_settings():
    with pytest.raises(ValueError, match="miss seconds_per_candle, started_at"):
        ReplayFeed.from_dict({"start_ms": START, "timeframe": "5m"})


# --- stored candles -----------------------------------------------------------------------------


def store(open_time, open_, *, symbol="BTC/USDT", timeframe="5m", exchange="bitget"):
    return Candle.objects.create(
        exchange=exchange, symbol=symbol, timeframe=timeframe, open_time=open_time,
        open=open_, high=open_ + 5, low=open_ - 5, close=open_ + 1, volume=Decimal("2.5"),
    )  # fmt: skip


@pytest.fixture
def candles(db):
    """Four 5m candles around the start, opening at 100, 101, 102, 103, and noise around them."""
    for index, open_time in enumerate(range(START - 2 * FIVE_MIN, START + 2 * FIVE_MIN, FIVE_MIN)):
        store(open_time, Decimal(100 + index))
    store(START, Decimal(900), symbol="ETH/USDT")
    store(START, Decimal(901), timeframe="1m")
    store(START, Decimal(902), exchange="binance")


def open_times(rows):
    return [row.open_time for row in rows]


def test_at_the_start_it_serves_the_history_as_closed_and_the_start_candle_as_next(candles):
    replay = feed()
    closed = replay_closed_candles("bitget", "BTC/USDT", "5m", replay, 1000.0)
    assert open_times(closed) == [START - 2 * FIVE_MIN, START - FIVE_MIN]
    next_candle = replay_next_candle("bitget", "BTC/USDT", "5m", replay, 1000.0)
    assert next_candle.open_time == START
    assert next_candle.open == Decimal(102)


def test_a_candle_arrives_when_the_replay_passes_its_close(candles):
    replay = feed()
    closed = replay_closed_candles("bitget", "BTC/USDT", "5m", replay, 1002.0)
    assert open_times(closed)[-1] == START
    assert replay_next_candle("bitget", "BTC/USDT", "5m", replay, 1002.0).open == Decimal(103)


def test_the_limit_keeps_the_newest_closed_candles_oldest_first(candles):
    replay = feed()
    closed = replay_closed_candles("bitget", "BTC/USDT", "5m", replay, 1004.0, limit=2)
    assert open_times(closed) == [START, START + FIVE_MIN]


def test_there_is_no_next_candle_once_the_replay_has_run_past_the_data(candles):
    assert replay_next_candle("bitget", "BTC/USDT", "5m", feed(), 1004.0) is None


def test_a_gap_in_the_stored_data_is_skipped_to_the_next_stored_candle(candles):
    # given: the candle at START + 10 min is missing, the one at START + 15 min is stored
    store(START + 3 * FIVE_MIN, Decimal(105))
    # then: at START + 10 min, the next candle is the one after the gap
    assert replay_next_candle("bitget", "BTC/USDT", "5m", feed(), 1004.0).open == Decimal(105)


class WallClock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_replay_prices_fill_at_the_next_candles_open_at_the_replays_market_time(candles):
    # given
    clock = WallClock(1000.0)
    prices = ReplayPrices("bitget", feed(), clock=clock)
    # then
    assert prices.reference_price("BTC/USDT") == Decimal(102)
    assert prices.now_ms() == START
    # when: a candle later
    clock.now = 1002.5
    # then
    assert prices.reference_price("BTC/USDT") == Decimal(103)
    assert prices.now_ms() == START + FIVE_MIN


def test_replay_prices_refuse_a_price_past_the_stored_data_naming_it(candles):
    prices = ReplayPrices("bitget", feed(), clock=WallClock(1004.0))
    with pytest.raises(ReplayEndedError) as refused:
        prices.reference_price("BTC/USDT")
    assert refused.value.message == (
        "the replay has run past the stored data: no 5m candle of BTC/USDT on bitget opens at "
        "or after 2024-01-01T00:10:00Z"
    )
    assert refused.value.code == "replay_ended"
    assert refused.value.transient is False
