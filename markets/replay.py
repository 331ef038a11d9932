"""Replays: stored candles served as if they were arriving live, at a chosen speed.

A replay starts at a market time ``start_ms`` (epoch ms, aligned to the timeframe) at the wall
clock moment ``started_at`` (epoch seconds), and moves market time on by one candle of
``timeframe`` every ``seconds_per_candle`` wall seconds (a 5m replay at 2 s per candle shows one
hour of market in 24 s). Market time moves in whole candles, never in between::

    market_time(now) = start_ms + floor((now - started_at) / seconds_per_candle) * timeframe_ms

(before ``started_at`` it stays at ``start_ms``). At market time ``T``:

- a candle is *closed* when ``open_time + timeframe_ms <= T``: its whole OHLCV is known. At the
  start, the history before ``start_ms`` is closed (strategies may warm up on it).
- the *next* candle is the one opening at ``T``, the first not yet closed. It is forming: only
  its open is "now", so a market order placed at ``T`` fills at its open, and nothing of its
  high, low or close may be seen before it closes at ``T + timeframe_ms``.

The clock math is pure (``ReplayFeed``); ``replay_closed_candles``, ``replay_next_candle``,
``replay_candle_from`` and ``replay_candle_times`` read the stored ``Candle`` rows for a replay
(Django is imported only when they are called).

``market_time(now)`` is where the replay is *scheduled* to be: its pace. A replay bot does not
jump to it: it acts on every stored candle in order, from the one after the last it acted on,
and catches up with the schedule a bounded number of candles per tick when it has fallen
behind (``bots.services.ticks``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from markets.timeframes import TIMEFRAMES, timeframe_ms

if TYPE_CHECKING:
    from markets.models import Candle


def _exact(value: float | int | Decimal) -> Decimal:
    """A float as the decimal it was written as (``0.1`` is 0.1, not 0.1000000000000000055...)."""
    return value if isinstance(value, Decimal) else Decimal(repr(value))


@dataclass(frozen=True)
class ReplayFeed:
    """Where and how fast a replay runs. Immutable; validate on construction.

    - ``start_ms``: market time (epoch ms, UTC) at the start, a multiple of the timeframe.
    - ``timeframe``: the candle that market time advances by, one of ``TIMEFRAMES``.
    - ``seconds_per_candle``: wall seconds per candle (the speed), > 0.
    - ``started_at``: wall clock (epoch seconds, as ``time.time()``) when the replay started.
    """

    start_ms: int
    timeframe: str
    seconds_per_candle: float
    started_at: float

    def __post_init__(self) -> None:
        if self.timeframe not in TIMEFRAMES:
            raise ValueError(
                f"unknown replay timeframe {self.timeframe!r}; use one of {', '.join(TIMEFRAMES)}"
            )
        if isinstance(self.start_ms, bool) or not isinstance(self.start_ms, int):
            raise ValueError(
                f"replay start_ms must be an integer epoch in ms, not {self.start_ms!r}"
            )
        if self.start_ms < 0:
            raise ValueError(f"replay start_ms must not be negative, got {self.start_ms}")
        if self.start_ms % self.timeframe_ms:
            raise ValueError(
                f"replay start_ms {self.start_ms} is not aligned to the {self.timeframe} timeframe "
                f"(a multiple of {self.timeframe_ms} ms); candles open on that grid"
            )
        _finite_number("seconds_per_candle", self.seconds_per_candle)
        if self.seconds_per_candle <= 0:
            raise ValueError(
                f"replay speed must be positive: seconds_per_candle={self.seconds_per_candle}"
            )
        _finite_number("started_at", self.started_at)

    @property
    def timeframe_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    def candles_elapsed(self, now: float) -> int:
        """Whole candles replayed by wall time ``now`` (0 before the start)."""
        _finite_number("now", now)
        elapsed = (_exact(now) - _exact(self.started_at)) / _exact(self.seconds_per_candle)
        return max(0, math.floor(elapsed))

    def market_time(self, now: float) -> int:
        """Market time (epoch ms) at wall time ``now``; advances in whole candles."""
        return self.start_ms + self.candles_elapsed(now) * self.timeframe_ms

    def closed_until(self, now: float, timeframe: str | None = None) -> int:
        """Open time of the newest closed candle of ``timeframe`` (default: the feed's).

        Candles with ``open_time <= closed_until(now)`` are closed, i.e. ``open_time + tf <=
        market_time(now)``. Other timeframes are epoch-aligned: a 1h candle of a 5m replay is
        closed once all twelve 5m candles in it are.
        """
        return self.next_open_time(now, timeframe) - timeframe_ms(timeframe or self.timeframe)

    def next_open_time(self, now: float, timeframe: str | None = None) -> int:
        """Open time of the first candle of ``timeframe`` (default: the feed's) not yet closed."""
        step = timeframe_ms(timeframe or self.timeframe)
        return self.market_time(now) // step * step

    def is_closed(self, open_time: int, now: float, timeframe: str | None = None) -> bool:
        return open_time <= self.closed_until(now, timeframe)

    def seconds_until_next_candle(self, now: float) -> float:
        """Wall seconds until market time advances again (for a runner that sleeps)."""
        next_step = _exact(self.started_at) + (self.candles_elapsed(now) + 1) * _exact(
            self.seconds_per_candle
        )
        return max(0.0, float(next_step - _exact(now)))

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form, e.g. to keep in a bot's configuration: the four fields by name."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayFeed:
        names = [field.name for field in fields(cls)]
        missing = set(names) - set(data)
        if missing:
            raise ValueError(f"replay settings miss {', '.join(sorted(missing))}")
        return cls(**{name: data[name] for name in names})


def _finite_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"replay {name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"replay {name} must be finite, not {value!r}")


# --- stored candles, as the replay shows them ---------------------------------------------------


def replay_closed_candles(
    exchange: str,
    symbol: str,
    timeframe: str,
    feed: ReplayFeed,
    now: float,
    limit: int | None = None,
) -> list[Candle]:
    """The stored candles closed at wall time ``now`` (oldest first; the newest ``limit``)."""
    from markets.models import Candle

    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    rows = Candle.objects.filter(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        open_time__lte=feed.closed_until(now, timeframe),
    ).order_by("-open_time")
    if limit is not None:
        rows = rows[:limit]
    return list(reversed(rows))


def replay_next_candle(
    exchange: str, symbol: str, timeframe: str, feed: ReplayFeed, now: float
) -> Candle | None:
    """The first stored candle not yet closed at ``now`` (``None``: the replay ran past the data).

    That is the candle opening at ``next_open_time(now)``; when it is missing from the stored
    data (a gap), the first stored candle after it.
    """
    return replay_candle_from(exchange, symbol, timeframe, feed.next_open_time(now, timeframe))


def replay_candle_from(exchange: str, symbol: str, timeframe: str, open_ms: int) -> Candle | None:
    """The first stored candle opening at or after ``open_ms`` (``None``: past the data)."""
    from markets.models import Candle

    return (
        Candle.objects.filter(
            exchange=exchange, symbol=symbol, timeframe=timeframe, open_time__gte=open_ms
        )
        .order_by("open_time")
        .first()
    )


def replay_candle_times(
    exchange: str, symbol: str, timeframe: str, *, after_ms: int, until_ms: int, limit: int
) -> list[int]:
    """Open times of the stored candles with ``after_ms < open_time <= until_ms``, oldest
    first, at most ``limit``: the candles a replay that has acted on ``after_ms`` has still to
    act on when its market time has closed ``until_ms`` (a gap in the data is no candle)."""
    from markets.models import Candle

    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    if until_ms <= after_ms:
        return []
    return list(
        Candle.objects.filter(
            exchange=exchange, symbol=symbol, timeframe=timeframe,
            open_time__gt=after_ms, open_time__lte=until_ms,
        )
        .order_by("open_time")
        .values_list("open_time", flat=True)[:limit]
    )  # fmt: skip
