"""What a schedule will do next: when it fires (its cron, UTC) and which stored candles its next
run would cover. Reads only; the pages show them in the trader's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery.schedules import crontab
from django.db.models import Count, Max, Min

from backtests.models import BacktestSchedule
from markets.models import Candle
from markets.timeframes import timeframe_ms

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def schedule_period(schedule: BacktestSchedule, now: datetime) -> tuple[datetime, datetime]:
    """The period of a run fired at ``now``: [now - lookback, the open time after the last
    closed candle), on candle boundaries."""
    step = timeframe_ms(schedule.timeframe)
    end_ms = int(now.timestamp() * 1000) // step * step
    end = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
    return end - timedelta(days=schedule.lookback_days), end


def schedule_next_run(schedule: BacktestSchedule, now: datetime) -> datetime | None:
    """When beat fires the schedule next after ``now`` (celery's own reading of the cron, in
    UTC); None while it is paused."""
    if not schedule.enabled:
        return None
    fields = dict(zip(CRON_FIELDS, schedule.cron.split(), strict=True))
    moment = now.astimezone(UTC)
    timing = crontab(**fields, nowfun=lambda: moment)
    return moment + timing.remaining_estimate(moment)


@dataclass(frozen=True)
class Coverage:
    """The stored candles of the period a run fired now would cover.

    ``state``: ``"none"`` (no candle: the run fails), ``"partial"`` (the candles start after the
    period does, or stop more than a candle before its end: the run simulates that part only),
    ``"full"``. ``first`` / ``last`` are the stored candles' open times, ``latest`` the last
    candle stored of the market at all (None: none).
    """

    start: datetime
    end: datetime
    count: int
    first: datetime | None
    last: datetime | None
    latest: datetime | None
    state: str


def schedule_coverage(schedule: BacktestSchedule, now: datetime) -> Coverage:
    start, end = schedule_period(schedule, now)
    step = timeframe_ms(schedule.timeframe)
    market = Candle.objects.filter(
        exchange=schedule.exchange, symbol=schedule.symbol, timeframe=schedule.timeframe
    )
    inside = market.filter(open_time__gte=_ms(start), open_time__lt=_ms(end)).aggregate(
        count=Count("open_time"), first=Min("open_time"), last=Max("open_time")
    )
    count = inside["count"]
    if count == 0:
        latest = market.aggregate(latest=Max("open_time"))["latest"]
        return Coverage(start, end, 0, None, None, _time(latest), "none")
    late_start = inside["first"] > _ms(start)
    early_end = inside["last"] < _ms(end) - 2 * step
    state = "partial" if late_start or early_end else "full"
    first, last = _time(inside["first"]), _time(inside["last"])
    return Coverage(start, end, count, first, last, last, state)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time(milliseconds: int | None) -> datetime | None:
    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
