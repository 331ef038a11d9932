"""Storing candles: file and exchange imports, resampled timeframes, the shipped sample.

Every write goes through ``candles_import``, which is idempotent and all-or-nothing: a candle
identical to the stored one is left alone, a new one is created, and one that contradicts the
stored candle of the same key stops the whole import before anything is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd
from django.db import IntegrityError, connection, transaction

from markets.candle_csv import (
    QUANTUM,
    VALUE_COLUMNS,
    CandleRow,
    candle_problems,
    format_ms,
    read_candle_file,
)
from markets.events import candle_data, candles_channel, candles_group
from markets.exchanges.base import Exchange
from markets.models import Candle
from markets.timeframes import OHLCV_COLUMNS, TimeframeError, resample, timeframe_ms
from tradingbot.errors import AppError
from tradingbot.events import publish_after_commit
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "btc_usdt_5m.csv.gz"
SAMPLE_TIMEFRAME = "5m"
SAMPLE_TARGETS = ("15m", "1h", "4h", "1d")
BATCH_SIZE = 2000
# SQLite keeps decimals as 8-byte floats: about 15 significant digits survive the round trip.
SQLITE_RELATIVE_TOLERANCE = Decimal("1e-14")

Progress = Callable[[int, int], None]
Row = TypeVar("Row", bound=tuple[Any, ...])


class CandleDataError(AppError):
    """Candles that cannot be stored as given (inconsistent prices, misaligned, duplicated)."""

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__("invalid_candles", message, 400, details=details)


class CandleConflictError(CandleDataError):
    """A candle that contradicts the stored candle with the same key. ``details["row"]`` is
    the 1-based position of the offending row in the import."""

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        AppError.__init__(self, "candle_conflict", message, 409, details=details)


@dataclass(frozen=True)
class ImportResult:
    created: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.unchanged

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult(self.created + other.created, self.unchanged + other.unchanged)


@dataclass(frozen=True)
class SampleSummary:
    exchange: str
    symbol: str
    results: dict[str, ImportResult] = field(default_factory=dict)  # per timeframe

    @property
    def created(self) -> int:
        return sum(result.created for result in self.results.values())

    @property
    def unchanged(self) -> int:
        return sum(result.unchanged for result in self.results.values())

    @property
    def total(self) -> int:
        return self.created + self.unchanged


def _same(given: Decimal, stored: Decimal) -> bool:
    if given == stored:
        return True
    if connection.vendor != "sqlite":
        return False
    return abs(given - stored) <= max(abs(given), abs(stored)) * SQLITE_RELATIVE_TOLERANCE


def _checked_rows(rows: Iterable[CandleRow], timeframe: str) -> list[tuple[int, CandleRow]]:
    """(1-based position, row) ascending by open time, identical repeats dropped."""
    by_time: dict[int, tuple[int, CandleRow]] = {}
    for position, row in enumerate(rows, start=1):
        problems = candle_problems(row, timeframe=timeframe, values=True)
        seen = by_time.get(row.open_time)
        if seen is not None and seen[1] != row:
            problems.append(f"repeats the open time of row {seen[0]} with different values")
        if problems:
            reason = f"candle {format_ms(row.open_time)}: {'; '.join(problems)}"
            raise CandleDataError(
                f"row {position}: {reason}",
                details={"row": position, "open_time": row.open_time, "reason": reason},
            )
        by_time.setdefault(row.open_time, (position, row))
    return [by_time[open_time] for open_time in sorted(by_time)]


def _import_once(
    *, exchange: str, symbol: str, timeframe: str, rows: list[tuple[int, CandleRow]]
) -> ImportResult:
    with transaction.atomic():
        stored = {
            values[0]: values[1:]
            for values in Candle.objects.filter(
                exchange=exchange,
                symbol=symbol,
                timeframe=timeframe,
                open_time__gte=rows[0][1].open_time,
                open_time__lte=rows[-1][1].open_time,
            ).values_list(*OHLCV_COLUMNS)
        }
        new: list[Candle] = []
        for position, row in rows:
            existing = stored.get(row.open_time)
            if existing is None:
                # CandleRow's fields are named as Candle's: open_time and the OHLCV values.
                new.append(
                    Candle(exchange=exchange, symbol=symbol, timeframe=timeframe, **row._asdict())
                )
                continue
            differences = [
                f"{column} {given.normalize():f} given, {old.normalize():f} stored"
                for column, given, old in zip(VALUE_COLUMNS, row[1:], existing, strict=True)
                if not _same(given, old)
            ]
            if differences:
                reason = (
                    f"candle {format_ms(row.open_time)} conflicts with the stored {exchange} "
                    f"{symbol} {timeframe} candle: {', '.join(differences)}"
                )
                raise CandleConflictError(
                    f"row {position}: {reason}",
                    details={"row": position, "open_time": row.open_time, "reason": reason},
                )
        Candle.objects.bulk_create(new, batch_size=BATCH_SIZE)
    return ImportResult(created=len(new), unchanged=len(rows) - len(new))


def candles_import(
    *, exchange: str, symbol: str, timeframe: str, rows: Iterable[CandleRow]
) -> ImportResult:
    """Store candles idempotently, in one transaction: all of them or none.

    Rows identical to stored candles are counted ``unchanged``; a row whose key is stored with
    other values raises ``CandleConflictError`` naming the row (its 1-based position), and an
    invalid row raises ``CandleDataError``; either way nothing is written.
    """
    try:
        timeframe_ms(timeframe)
    except TimeframeError as exc:
        raise CandleDataError(str(exc)) from None
    checked = _checked_rows(rows, timeframe)
    if not checked:
        return ImportResult()
    try:
        result = _import_once(exchange=exchange, symbol=symbol, timeframe=timeframe, rows=checked)
    except IntegrityError:
        # Someone stored some of these keys between our read and our insert: look again.
        result = _import_once(exchange=exchange, symbol=symbol, timeframe=timeframe, rows=checked)
    logger.debug(
        "candles.imported",
        extra=context(
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            new=result.created,
            unchanged=result.unchanged,
        ),
    )
    return result


def _stored_frame(
    *, exchange: str, symbol: str, timeframe: str, since_ms: int | None, until_ms: int | None
) -> pd.DataFrame:
    candles = Candle.objects.filter(exchange=exchange, symbol=symbol, timeframe=timeframe)
    if since_ms is not None:
        candles = candles.filter(open_time__gte=since_ms)
    if until_ms is not None:
        candles = candles.filter(open_time__lt=until_ms)
    return pd.DataFrame(
        list(candles.order_by("open_time").values_list(*OHLCV_COLUMNS)), columns=OHLCV_COLUMNS
    )


def candles_store_resampled(
    *,
    exchange: str,
    symbol: str,
    source: str,
    targets: Sequence[str],
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, ImportResult]:
    """Aggregate the stored ``source`` candles into each target timeframe and store them.

    Only complete buckets are stored (see ``markets.timeframes.resample``), so a partial trailing
    hour appears once its last 5m candle is there. ``since_ms``/``until_ms`` limit the work to
    the buckets that overlap [since_ms, until_ms) (say, those of a file just imported); the
    source candles are read for whole buckets. All targets in one transaction.
    """
    source_ms = timeframe_ms(source)
    for target in targets:
        target_ms = timeframe_ms(target)
        if target_ms <= source_ms or target_ms % source_ms:
            raise CandleDataError(f"cannot resample {source} into {target}")
    if not targets:
        return {}
    widest = max(timeframe_ms(target) for target in targets)
    if since_ms is not None:
        since_ms -= since_ms % widest
    if until_ms is not None:
        until_ms = -(-until_ms // widest) * widest
    frame = _stored_frame(
        exchange=exchange, symbol=symbol, timeframe=source, since_ms=since_ms, until_ms=until_ms
    )
    results: dict[str, ImportResult] = {}
    with transaction.atomic():
        for target in targets:
            resampled = resample(frame, source=source, target=target)
            rows = [
                CandleRow(int(values[0]), *values[1:])
                for values in resampled.itertuples(index=False, name=None)
            ]
            try:
                results[target] = candles_import(
                    exchange=exchange, symbol=symbol, timeframe=target, rows=rows
                )
            except CandleConflictError as exc:
                raise CandleConflictError(
                    f"{source} resampled into {target}: {exc.details['reason']}",
                    details=exc.details,
                ) from None
    return results


def _to_decimal(value: object) -> Decimal:
    if value is None:
        raise CandleDataError("the exchange returned a candle with a missing value")
    return Decimal(str(value)).quantize(QUANTUM)


def _ohlcv_row(candle: Sequence[object]) -> CandleRow:
    open_time = candle[0]
    if not isinstance(open_time, int | float):
        raise CandleDataError(f"the exchange returned a candle without a time: {candle!r}")
    return CandleRow(int(open_time), *(_to_decimal(value) for value in candle[1:6]))


def first_missing(stamps: Iterable[int], *, start: int, end: int, step: int) -> int:
    """The first time of start, start + step, ... before ``end`` that ``stamps`` (stored times
    of the range, ascending) lacks, or ``end``."""
    expected = start
    for stamp in stamps:
        if stamp != expected:
            break
        expected += step
    return min(expected, end)


def _stored_open_times(*, exchange: str, symbol: str, timeframe: str, start: int, end: int) -> Any:
    return (
        Candle.objects.filter(
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            open_time__gte=start,
            open_time__lt=end,
        )
        .order_by("open_time")
        .values_list("open_time", flat=True)
        .iterator(chunk_size=5000)
    )


@dataclass(frozen=True)
class PagedFetch(Generic[Row]):
    """How to fetch one kind of candle page by page (see ``fetch_closed_candles``).

    ``fetch(cursor, limit)`` asks the exchange for a page from ``cursor``, ``parse`` makes a
    row of one of its entries (``row[0]`` is the open time), ``store(rows)`` stores a page in
    its own transaction, ``stored_times(start, end)`` are the stored open times of [start, end)
    ascending.
    """

    fetch: Callable[[int, int], Sequence[Sequence[object]]]
    parse: Callable[[Sequence[object]], Row]
    store: Callable[[list[Row]], ImportResult]
    stored_times: Callable[[int, int], Iterable[int]]


@dataclass(frozen=True)
class FetchOutcome:
    result: ImportResult
    pages: int


def fetch_closed_candles(
    source: PagedFetch[Row],
    *,
    timeframe: str,
    since_ms: int,
    until_ms: int | None,
    page_limit: int,
    progress: Progress | None,
    now_ms: int | None,
) -> FetchOutcome:
    """Fetch closed candles opened in [since_ms, until_ms) page by page, storing each page.

    Resumable: it starts at the first candle of the range that is not stored yet, so a rerun
    after an interruption (each page is committed on its own) does not fetch the stored pages
    again. A candle still open at ``now_ms`` (default: the clock) is never stored. Stops when
    a page brings nothing new. ``progress(done, total)`` counts candles of the range.
    """
    step = timeframe_ms(timeframe)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    start = -(-since_ms // step) * step  # the first aligned open time at or after since
    end = now - step + 1  # candles opened before this are closed
    if until_ms is not None:
        end = min(end, until_ms)
    if end <= start:
        return FetchOutcome(ImportResult(), 0)
    total = -(-(end - start) // step)
    cursor = first_missing(source.stored_times(start, end), start=start, end=end, step=step)
    result, pages = ImportResult(), 0
    if progress is not None:
        progress((cursor - start) // step, total)
    while cursor < end:
        page = source.fetch(cursor, page_limit)
        pages += 1
        rows = sorted(row for row in map(source.parse, page) if cursor <= row[0] < end)
        if not rows:
            break
        result += source.store(rows)
        cursor = rows[-1][0] + step
        if progress is not None:
            progress(min(-(-(cursor - start) // step), total), total)
    return FetchOutcome(result, pages)


def candles_fetch_from_exchange(
    *,
    exchange: Exchange,
    symbol: str,
    timeframe: str,
    since_ms: int,
    until_ms: int | None = None,
    page_limit: int = 200,
    progress: Progress | None = None,
    now_ms: int | None = None,
) -> ImportResult:
    """Fetch closed candles opened in [since_ms, until_ms) page by page and store each page;
    resumable, see ``fetch_closed_candles``. The newest closed candle, when it is new, is
    announced to the market's subscribers. Exchange failures propagate as the adapter raised
    them.
    """
    key = {"exchange": exchange.exchange_id, "symbol": symbol, "timeframe": timeframe}
    step = timeframe_ms(timeframe)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    newest_closed = now // step * step - step

    def store(rows: list[CandleRow]) -> ImportResult:
        stored = candles_import(**key, rows=rows)
        if stored.created and rows[-1].open_time == newest_closed:
            _announce_closed(**key, row=rows[-1])
        return stored

    source = PagedFetch(
        fetch=lambda cursor, limit: exchange.fetch_ohlcv(
            symbol, timeframe, since=cursor, limit=limit
        ),
        parse=_ohlcv_row,
        store=store,
        stored_times=lambda start, end: _stored_open_times(**key, start=start, end=end),
    )
    outcome = fetch_closed_candles(
        source, timeframe=timeframe, since_ms=since_ms, until_ms=until_ms,
        page_limit=page_limit, progress=progress, now_ms=now,
    )  # fmt: skip
    result = outcome.result
    logger.info(
        "candles.fetched",
        extra=context(**key, pages=outcome.pages, new=result.created, unchanged=result.unchanged),
    )
    return result


def _announce_closed(*, exchange: str, symbol: str, timeframe: str, row: CandleRow) -> None:
    """Tell the market's subscribers about its newest closed candle, just stored."""
    data = candle_data(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        candle=[row.open_time, *(float(value) for value in row[1:])],
    )
    event = {"type": "candles.closed", "channel": candles_channel(exchange, symbol, timeframe),
             "owner": None, "data": data}  # fmt: skip
    publish_after_commit([candles_group(exchange, symbol, timeframe)], event)


def candles_load_sample(*, exchange: str = "bitget", symbol: str = "BTC/USDT") -> SampleSummary:
    """Store the shipped BTC/USDT 5m sample and its 15m, 1h, 4h and 1d resamples.

    Idempotent: a second call creates nothing. One transaction.
    """
    candle_file = read_candle_file(SAMPLE_PATH, timeframe=SAMPLE_TIMEFRAME)
    with transaction.atomic():
        results = {
            SAMPLE_TIMEFRAME: candles_import(
                exchange=exchange,
                symbol=symbol,
                timeframe=SAMPLE_TIMEFRAME,
                rows=candle_file.rows,
            )
        }
        results |= candles_store_resampled(
            exchange=exchange,
            symbol=symbol,
            source=SAMPLE_TIMEFRAME,
            targets=SAMPLE_TARGETS,
            since_ms=candle_file.rows[0].open_time,
            until_ms=candle_file.rows[-1].open_time + timeframe_ms(SAMPLE_TIMEFRAME),
        )
    summary = SampleSummary(exchange=exchange, symbol=symbol, results=results)
    logger.info(
        "candles.sample_loaded",
        extra=context(
            exchange=exchange, symbol=symbol, new=summary.created, unchanged=summary.unchanged
        ),
    )
    return summary
