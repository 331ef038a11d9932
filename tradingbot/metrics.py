"""Prometheus metrics of the whole platform, kept in Redis so that every process adds to them.

The platform runs several daphne and Celery processes, maybe on several machines; a registry per
process would show only the process that happens to be scraped. So:

- a **counter** or **histogram** observation is a few ``HINCRBY``/``HINCRBYFLOAT`` on one Redis
  hash per metric (one pipeline, one round trip), keyed by its label values (a JSON list) and,
  for a histogram, the bucket, ``count`` or ``sum``. An observation never raises: a Redis error
  is swallowed, counted in this process (``tradingbot_metrics_write_errors_total``) and logged
  once per outage, so a metric can never break a tick;
- a **gauge** is read when ``/metrics`` is scraped: the apps register theirs in
  ``AppConfig.ready()`` (``register_gauge``; bots register their count by status), and this
  module adds the Celery queue depths and the open WebSocket connections;
- open WebSocket connections are counted per process: each daphne keeps its count in a key of
  its own with a TTL, refreshed by a thread, so a killed daphne's connections vanish with its key.

``/metrics`` (``tradingbot.site.views.metrics``) renders ``metrics_text()``. The ground floor
imports no app; the metrics themselves are declared here so that every process knows them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from redis.backoff import NoBackoff
from redis.retry import Retry

from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

# Every key of the metrics starts with this (the tests give each xdist worker its own).
KEY_PREFIX = "tb-metrics"
# A daphne's connection count lives this long after its last refresh (every HEARTBEAT seconds).
WS_KEY_TTL_SECONDS = 60
WS_HEARTBEAT_SECONDS = 15.0
REDIS_TIMEOUT_SECONDS = 0.5
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)
DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@cache
def _client() -> redis.Redis:
    return metrics_client(settings.REDIS_URL)


def metrics_client(url: str) -> redis.Redis:
    """Short timeouts and no retries: a hung or down Redis may cost an observation half a
    second, not a tick's worth (redis-py's default retries three times with a backoff of
    seconds)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


class _WriteHealth:
    """Failed writes of this process, counted and logged once per outage."""

    def __init__(self) -> None:
        self.errors = 0
        self.failing = False
        self._lock = threading.Lock()

    def failed(self, error: Exception) -> None:
        with self._lock:
            self.errors += 1
            first, self.failing = not self.failing, True
        if first:
            logger.warning("metrics.write_failed", extra=context(error=type(error).__name__))

    def succeeded(self) -> None:
        if self.failing:
            with self._lock:
                was, self.failing = self.failing, False
            if was:
                logger.info("metrics.write_recovered")


_health = _WriteHealth()


def _write(commands: Callable[[Any], None]) -> None:
    """Run ``commands(pipeline)`` in one round trip; never raises."""
    try:
        pipe = _client().pipeline(transaction=False)
        commands(pipe)
        pipe.execute()
    except Exception as error:  # a metric must never break what it measures
        _health.failed(error)
        return
    _health.succeeded()


# --- counters and histograms in Redis ----------------------------------------------------------


class _StoredMetric:
    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        _stored[name] = self

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}:{self.name}"

    def _values(self, labels: Mapping[str, object]) -> list[str]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes the labels {self.labelnames}, not {tuple(labels)}")
        return [str(labels[name]) for name in self.labelnames]

    def family(self, stored: Mapping[bytes, bytes]) -> Metric:
        raise NotImplementedError


class Counter(_StoredMetric):
    """A counter summed over every process. ``known`` label values are shown as 0 until seen."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = (),
        known: Iterable[Sequence[str]] = (),
    ) -> None:  # fmt: skip
        super().__init__(name, documentation, labelnames)
        self.known = [list(values) for values in known]

    def inc(self, amount: float = 1, **labels: object) -> None:
        field = json.dumps(self._values(labels))
        _write(lambda pipe: pipe.hincrbyfloat(self.key, field, amount))

    def inc_each(self, observations: Iterable[Mapping[str, object]]) -> None:
        """Add 1 per mapping of labels, all in one round trip."""
        fields = [json.dumps(self._values(labels)) for labels in observations]

        def commands(pipe: Any) -> None:
            for field in fields:
                pipe.hincrbyfloat(self.key, field, 1)

        if fields:
            _write(commands)

    def family(self, stored: Mapping[bytes, bytes]) -> Metric:
        values = {tuple(known): 0.0 for known in self.known}
        for field, stored_value in stored.items():
            values[tuple(json.loads(field))] = float(stored_value)
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for label_values, value in sorted(values.items()):
            family.add_metric(list(label_values), value)
        return family


class Histogram(_StoredMetric):
    """A histogram summed over every process. An observation writes its one bucket (the first
    whose bound holds it), the count and the sum; buckets are made cumulative when scraped."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:  # fmt: skip
        super().__init__(name, documentation, labelnames)
        self.bounds = sorted(float(bound) for bound in buckets)

    def observe(self, value: float, **labels: object) -> None:
        """Count ``value`` (seconds, for the durations here); NaN is ignored, a negative is 0."""
        if math.isnan(value):
            return
        value = max(float(value), 0.0)
        base = self._values(labels)
        bound = next((b for b in self.bounds if value <= b), math.inf)
        bucket = json.dumps([*base, "bucket", floatToGoString(bound)])
        count, total = json.dumps([*base, "count"]), json.dumps([*base, "sum"])

        def commands(pipe: Any) -> None:
            pipe.hincrby(self.key, bucket, 1)
            pipe.hincrby(self.key, count, 1)
            pipe.hincrbyfloat(self.key, total, value)

        _write(commands)

    def family(self, stored: Mapping[bytes, bytes]) -> Metric:
        series: dict[tuple[str, ...], dict[str, float]] = {}
        width = len(self.labelnames)
        for field, value in stored.items():
            parts = json.loads(field)
            name = parts[width] if parts[width] != "bucket" else parts[width + 1]
            series.setdefault(tuple(parts[:width]), {})[name] = float(value)
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for label_values, numbers in sorted(series.items()):
            cumulative, buckets = 0.0, []
            for bound in [*self.bounds, math.inf]:
                cumulative += numbers.get(floatToGoString(bound), 0.0)
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric(list(label_values), buckets, sum_value=numbers.get("sum", 0.0))
        return family


_stored: dict[str, _StoredMetric] = {}

# --- what the platform measures ----------------------------------------------------------------

TICK_LATENCY = Histogram(
    "tradingbot_tick_latency_seconds",
    "From a candle's close (on the bot's clock: the wall clock, or the replay's) to the end of "
    "the tick that handled it.",
    ["source"],
    buckets=LATENCY_BUCKETS,
)
ORDERS = Counter(
    "tradingbot_orders_total",
    "Orders of bots by how they ended: filled, cancelled, rejected (refused by the exchange or "
    "before sending), failed (never reached the exchange).",
    ["outcome"],
    known=[["filled"], ["cancelled"], ["rejected"], ["failed"]],
)
EXCHANGE_ERRORS = Counter(
    "tradingbot_exchange_errors_total",
    "Errors answered by an exchange (through ccxt), by exchange and kind (the error code).",
    ["exchange", "kind"],
)
BACKTEST_DURATION = Histogram(
    "tradingbot_backtest_duration_seconds",
    "Run time of a backtest on its worker, by how it ended (done, failed).",
    ["status"],
)
SWEEP_DURATION = Histogram(
    "tradingbot_sweep_duration_seconds",
    "Wall time of a sweep from its first combination's start to its end, by how it ended.",
    ["status"],
)
EVENTS_PUBLISHED = Counter(
    "tradingbot_events_published_total",
    "Live events published to the channel layer, by channel kind (bot, backtest, sweep, "
    "candles...).",
    ["kind"],
)


# --- gauges read when scraped ------------------------------------------------------------------

GaugeRead = Callable[[], Iterable[tuple[Sequence[str], float]]]


@dataclass(frozen=True)
class _Gauge:
    name: str
    documentation: str
    labelnames: tuple[str, ...]
    read: GaugeRead


_gauges: dict[str, _Gauge] = {}


def register_gauge(
    name: str, documentation: str, *, labels: Sequence[str], read: GaugeRead
) -> None:
    """Add a gauge read at every scrape: ``read()`` yields ``(label values, value)``."""
    _gauges[name] = _Gauge(name, documentation, tuple(labels), read)


def celery_queue_depths() -> Iterator[tuple[list[str], float]]:
    """Messages waiting in each Celery queue: the length of its Redis list(s).

    Kombu's Redis transport keeps a queue as a list named after it; with message priorities,
    each priority step but 0 has a list of its own (``<queue>\\x06\\x16<step>``)."""
    from kombu.transport.redis import Channel

    from tradingbot.celery import QUEUES, app

    options = app.conf.broker_transport_options or {}
    prefix = options.get("global_keyprefix", "")
    steps = options.get("priority_steps", Channel.priority_steps)
    separator = options.get("sep", Channel.sep)
    names = QUEUES + tuple(q for q in EXTRA_QUEUES if q not in QUEUES)
    pipe = _client().pipeline(transaction=False)
    for queue in names:
        for step in steps:
            pipe.llen(f"{prefix}{queue}{separator}{step}" if step else f"{prefix}{queue}")
    lengths = iter(pipe.execute())
    for queue in names:
        yield [queue], float(sum(next(lengths) for _ in steps))


# Queues watched besides the platform's own (a test's, or a deployment's extra queue).
EXTRA_QUEUES: list[str] = []


class _ConnectionCount:
    """This process's open WebSocket connections, kept in ``<prefix>:ws:<host>:<pid>`` by a
    daemon thread: at once after a change, and every ``WS_HEARTBEAT_SECONDS`` to renew the TTL."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Event()
        self._lock = threading.Lock()
        self._pid = 0

    def opened(self) -> None:
        self._add(1)

    def closed(self) -> None:
        self._add(-1)

    def _add(self, delta: int) -> None:
        with self._lock:
            self.count += delta
            if self._pid != os.getpid():  # first use in this process
                self._pid = os.getpid()
                threading.Thread(target=self._keep, name="metrics-ws", daemon=True).start()
        self._changed.set()

    def _keep(self) -> None:
        written = None
        while True:
            changed = self._changed.wait(WS_HEARTBEAT_SECONDS)
            self._changed.clear()
            count = self.count
            if count or written or changed:  # an idle process lets its zero expire
                self._refresh(f"{KEY_PREFIX}:ws:{socket.gethostname()}:{os.getpid()}", count)
                written = count

    @staticmethod
    def _refresh(key: str, count: int) -> None:
        _write(lambda pipe: pipe.set(key, count, ex=WS_KEY_TTL_SECONDS))


WS_CONNECTIONS = _ConnectionCount()


def open_connections() -> Iterator[tuple[list[str], float]]:
    client = _client()
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}:ws:*", count=1000))
    counts = client.mget(keys) if keys else []
    yield [], float(sum(int(count) for count in counts if count is not None))


register_gauge(
    "tradingbot_celery_queue_depth",
    "Messages waiting in each Celery queue (trading, backtests, default).",
    labels=["queue"],
    read=celery_queue_depths,
)
register_gauge(
    "tradingbot_websocket_connections",
    "Open live-update WebSocket connections, summed over every daphne process.",
    labels=[],
    read=open_connections,
)


# --- the scrape ---------------------------------------------------------------------------------


class PlatformCollector:
    """Renders the stored counters and histograms and reads the gauges, at each scrape."""

    def collect(self) -> Iterator[Metric]:
        stored_ok = True
        try:
            pipe = _client().pipeline(transaction=False)
            for metric in _stored.values():
                pipe.hgetall(metric.key)
            stored = pipe.execute()
        except (redis.RedisError, OSError) as error:
            logger.warning("metrics.read_failed", extra=context(error=type(error).__name__))
            stored, stored_ok = [{} for _ in _stored], False
        for metric, values in zip(_stored.values(), stored, strict=True):
            try:
                yield metric.family(values)
            except (ValueError, IndexError, TypeError) as error:  # a field of another version
                logger.warning(
                    "metrics.read_failed",
                    extra=context(metric=metric.name, error=type(error).__name__),
                )
        yield from self._gauges()
        yield from self._health(stored_ok)

    def _gauges(self) -> Iterator[Metric]:
        for gauge in _gauges.values():
            family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=gauge.labelnames)
            try:
                for label_values, value in gauge.read():
                    family.add_metric(list(label_values), value)
            except Exception as error:  # one unreadable gauge must not hide the others
                logger.warning(
                    "metrics.gauge_failed",
                    extra=context(metric=gauge.name, error=type(error).__name__),
                )
                continue
            yield family

    def _health(self, stored_ok: bool) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "tradingbot_metrics_store_up",
            "1 when the shared metrics store (Redis) answered this scrape, else 0.",
            value=1.0 if stored_ok else 0.0,
        )
        yield CounterMetricFamily(
            "tradingbot_metrics_write_errors",
            "Observations that the serving process could not write to Redis (this process only).",
            value=float(_health.errors),
        )


def metrics_text() -> bytes:
    """The Prometheus text exposition of every metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector())
    return generate_latest(registry)
