"""Resampling candles into higher timeframes (pure pandas, no database)."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from markets.timeframes import OHLCV_COLUMNS, TimeframeError, resample, timeframe_ms

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "markets" / "data" / "btc_usdt_5m.csv.gz"
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_672_531_200_000  # 2023-01-01 00:00 UTC


def frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=OHLCV_COLUMNS)


def as_rows(result: pd.DataFrame) -> list[list[int]]:
    return [[int(value) for value in row] for row in result.itertuples(index=False)]


def steady(start: int, count: int, step: int) -> list[tuple[int, ...]]:
    """Candle i opens at 100 + i, closes at 101 + i, high 102 + i, low 99 + i, volume 1."""
    return [(start + i * step, 100 + i, 102 + i, 99 + i, 101 + i, 1) for i in range(count)]


def test_it_aggregates_5m_into_15m_first_max_min_last_sum() -> None:
    # given six 5m candles: two complete quarter hours
    candles = frame(
        [
            (T0, 10, 12, 9, 11, 1),
            (T0 + 5 * MIN, 11, 13, 10, 12, 2),
            (T0 + 10 * MIN, 12, 12, 8, 9, 3),
            (T0 + 15 * MIN, 9, 9, 7, 8, 4),
            (T0 + 20 * MIN, 8, 15, 8, 14, 5),
            (T0 + 25 * MIN, 14, 14, 13, 13, 6),
        ]
    )

    # when
    result = resample(candles, source="5m", target="15m")

    # then open is the first open, high the max, low the min, close the last, volume the sum
    assert as_rows(result) == [
        [T0, 10, 13, 8, 9, 6],
        [T0 + 15 * MIN, 9, 15, 7, 13, 15],
    ]


def test_it_aggregates_5m_into_1h_whatever_the_input_order() -> None:
    # given the twelve 5m candles of one hour, shuffled
    candles = frame(steady(T0, 12, 5 * MIN)).sample(frac=1, random_state=7)

    # when
    result = resample(candles, source="5m", target="1h")

    # then: open of the 00:00 candle, highest high (102 + 11), lowest low, close of 00:55
    assert as_rows(result) == [[T0, 100, 113, 99, 112, 12]]


def test_it_drops_an_hour_with_a_missing_candle_and_the_trailing_partial_hour() -> None:
    # given a complete first hour, a second hour without its 00:35 candle, and 3 candles of a third
    rows = steady(T0, 12 + 12 + 3, 5 * MIN)
    del rows[12 + 7]

    # when
    result = resample(frame(rows), source="5m", target="1h")

    # then only the first hour is a candle
    assert as_rows(result) == [[T0, 100, 113, 99, 112, 12]]


def test_it_aligns_daily_buckets_to_midnight_utc() -> None:
    # given six 4h candles from 00:00, and six more from 04:00 on the next day
    first_day = steady(T0, 6, 4 * HOUR)
    shifted = steady(T0 + DAY + 4 * HOUR, 6, 4 * HOUR)

    # when
    aligned = resample(frame(first_day), source="4h", target="1d")
    straddling = resample(frame(shifted), source="4h", target="1d")

    # then the first makes one day opening at 00:00 UTC; the second covers two days by halves
    assert as_rows(aligned) == [[T0, 100, 107, 99, 106, 6]]
    assert straddling.empty


@pytest.mark.parametrize(
    ("source", "target", "count"),
    [("15m", "1h", 4), ("1h", "4h", 4), ("4h", "1d", 6), ("1m", "5m", 5), ("5m", "1d", 288)],
)
def test_it_resamples_every_multiple_pair(source: str, target: str, count: int) -> None:
    # given exactly one target bucket of source candles
    candles = frame(steady(T0, count, timeframe_ms(source)))

    # when
    result = resample(candles, source=source, target=target)

    # then
    assert as_rows(result) == [[T0, 100, 101 + count, 99, 100 + count, count]]


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("1h", "5m", "cannot resample 1h into 5m"),
        ("5m", "5m", "cannot resample 5m into 5m"),
        ("5m", "7m", "unknown timeframe '7m'"),
        ("2m", "1h", "unknown timeframe '2m'"),
    ],
)
def test_it_refuses_impossible_pairs(source: str, target: str, message: str) -> None:
    # given / when / then
    with pytest.raises(TimeframeError, match=message):
        resample(frame(steady(T0, 12, 5 * MIN)), source=source, target=target)


def test_it_returns_no_candles_for_no_candles() -> None:
    # given / when
    result = resample(frame([]), source="5m", target="1h")

    # then
    assert result.empty
    assert list(result.columns) == OHLCV_COLUMNS


def read_sample() -> list[list[str]]:
    with gzip.open(SAMPLE, "rt", newline="") as stream:
        return list(csv.reader(stream))[1:]


def test_it_turns_the_real_sample_into_complete_hours() -> None:
    # given the shipped 5m sample (2023-01-02 16:45 to 2023-02-09 21:15 UTC)
    rows = read_sample()
    candles = frame([(int(row[0]), *(Decimal(value) for value in row[1:])) for row in rows])

    # when
    hours = resample(candles, source="5m", target="1h")

    # then 16:45-16:55 on the first day and 21:00-21:15 on the last are partial hours; every
    # other hour of the 38 days has its 12 candles
    per_hour: dict[int, int] = {}
    for row in rows:
        start = int(row[0]) - int(row[0]) % HOUR
        per_hour[start] = per_hour.get(start, 0) + 1
    complete = sorted(start for start, count in per_hour.items() if count == 12)
    assert len(hours) == len(complete) == 916
    assert hours["open_time"].tolist() == complete
    assert hours["open_time"].iloc[0] == 1_672_678_800_000  # 2023-01-02 17:00
    assert hours["open_time"].iloc[-1] == 1_675_972_800_000  # 2023-02-09 20:00

    # and the hour of 2023-01-20 14:00 UTC equals a direct computation over its 12 rows
    hour = 1_674_223_200_000
    members = [row for row in rows if hour <= int(row[0]) < hour + HOUR]
    direct = [
        Decimal(members[0][1]),
        max(Decimal(row[2]) for row in members),
        min(Decimal(row[3]) for row in members),
        Decimal(members[-1][4]),
        sum(Decimal(row[5]) for row in members),
    ]
    checked = hours[hours["open_time"] == hour].iloc[0]
    assert len(members) == 12
    assert [checked[column] for column in OHLCV_COLUMNS[1:]] == direct
    assert direct == [
        Decimal("21053.0"),
        Decimal("21170.0"),  # the 14:40 candle
        Decimal("21006.7"),  # the 14:30 candle
        Decimal("21148.0"),
        Decimal("28405.348"),
    ]
