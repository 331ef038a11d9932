"""Perpetual-swap market data: mark-price candles and funding rates, from CSV files, and the
shipped XRP/USDT:USDT sample (``markets/data/perp/``, see its README).

Files are checked completely before anything is written; every import is idempotent (a row
identical to the stored one is ``unchanged``) and all-or-nothing: a bad row or a row that
contradicts the stored one raises ``PerpDataError`` naming its file line, and nothing is written.

- Mark candles: ``timestamp,open,high,low,close,volume`` like trade candles, but ``volume`` may be
  empty (mark prices are not traded): it is stored as NULL, never as zero. Timeframes are the
  candle timeframes plus ``8h`` (the funding interval).
- Funding rates: ``timestamp,funding_rate``. Exchanges stamp a funding a few milliseconds after
  the 8-hour boundary (``1637193600017``); the time is floored to the boundary (within
  ``FUNDING_SLACK_MS``) so that it joins the candles. Float noise is rounded (``denoise``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple

from django.db import transaction

from markets.candle_csv import (
    PRICE_COLUMNS,
    QUANTUM,
    Steps,
    denoise,
    format_ms,
    read_candle_file,
    value_problem,
)
from markets.candles import (
    SAMPLE_TARGETS,
    ImportResult,
    _same,
    candles_import,
    candles_store_resampled,
)
from markets.models import FundingRate, MarkCandle
from markets.selectors import market_steps
from markets.timeframes import FUNDING_INTERVAL_MS, MARK_TIMEFRAME_MS, TIMEFRAME_MS
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

FUNDING_SLACK_MS = 60 * 1000  # a stamp later than this after the boundary is refused
MARK_HEADER = ("timestamp", "open", "high", "low", "close", "volume")
FUNDING_HEADER = ("timestamp", "funding_rate")

PERP_DATA_DIR = Path(__file__).resolve().parent / "data" / "perp"
PERP_SAMPLE_SYMBOL = "XRP/USDT:USDT"
PERP_SAMPLE_TRADES = ("XRP_USDT_USDT-5m-futures.csv", "5m")
PERP_SAMPLE_MARKS = (("XRP_USDT_USDT-1h-mark.csv", "1h"), ("XRP_USDT_USDT-8h-mark.csv", "8h"))
PERP_SAMPLE_FUNDING = "XRP_USDT_USDT-8h-funding_rate.csv"


class PerpDataError(AppError):
    """Mark candles or funding rates that cannot be stored as given."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_perp_data", message, 400)


class MarkRow(NamedTuple):
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal | None


class FundingRow(NamedTuple):
    funding_time: int  # floored to the funding interval
    rate: Decimal


def _lines(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """(file line, cells) of each non-blank data line, after checking the header."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream)
            first = next(reader, None)
            if first is None or tuple(c.strip().lower() for c in first) != header:
                raise PerpDataError(
                    f"{path}, line 1: header is {','.join(first or [])!r}; "
                    f"expected {','.join(header)!r}"
                )
            rows = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PerpDataError(f"{path}: cannot read the file: {exc}") from None
    if not rows:
        raise PerpDataError(f"{path}, line 2: no rows after the header")
    yield from rows


def _decimal(column: str, text: str, steps: Steps) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{column} {text.strip()!r} is not a number") from None
    denoised = denoise(value, steps, column)
    return denoised[0] if denoised is not None else value


def _timestamp(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or int(text) < 10**11:
        raise ValueError(f"timestamp {text!r} is not epoch milliseconds")
    return int(text)


def mark_row_from_cells(cells: list[str], step_ms: int, steps: Steps) -> MarkRow:
    if len(cells) != len(MARK_HEADER):
        raise ValueError(f"expected {len(MARK_HEADER)} columns, found {len(cells)}")
    open_time = _timestamp(cells[0])
    if open_time % step_ms:
        raise ValueError(f"timestamp {open_time} is not aligned to the timeframe")
    prices = [
        _decimal(column, text, steps)
        for column, text in zip(PRICE_COLUMNS, cells[1:5], strict=True)
    ]
    volume = _decimal("volume", cells[5], steps) if cells[5].strip() else None
    named = [*zip(PRICE_COLUMNS, prices, strict=True)] + (
        [("volume", volume)] if volume is not None else []
    )
    problems = [p for column, value in named if (p := value_problem(column, value))]
    if problems:
        raise ValueError("; ".join(problems))
    row = MarkRow(open_time, prices[0], prices[1], prices[2], prices[3], volume)
    if row.low > min(row.open, row.close) or row.high < max(row.open, row.close):
        raise ValueError(f"low {row.low} / high {row.high} do not hold open and close")
    return row


def read_mark_file(path: Path, *, timeframe: str, steps: Steps | None = None) -> list[MarkRow]:
    """The mark candles of a file, ascending; ``PerpDataError`` naming the first bad line."""
    if timeframe not in MARK_TIMEFRAME_MS:
        raise PerpDataError(f"unknown timeframe {timeframe!r} for mark candles")
    rows: list[MarkRow] = []
    for line, cells in _lines(path, MARK_HEADER):
        try:
            row = mark_row_from_cells(cells, MARK_TIMEFRAME_MS[timeframe], steps or Steps())
            if rows and row.open_time <= rows[-1].open_time:
                raise ValueError("timestamps must be strictly ascending")
        except ValueError as exc:
            raise PerpDataError(f"{path}, line {line}: {exc}; nothing was imported") from None
        rows.append(row)
    return rows


def funding_row_from_cells(cells: list[str]) -> FundingRow:
    if len(cells) != len(FUNDING_HEADER):
        raise ValueError(f"expected {len(FUNDING_HEADER)} columns, found {len(cells)}")
    stamp = _timestamp(cells[0])
    floored = stamp - stamp % FUNDING_INTERVAL_MS
    if stamp - floored > FUNDING_SLACK_MS:
        raise ValueError(f"timestamp {stamp} ({format_ms(stamp)}) is not at an 8-hour boundary")
    rate = _decimal("funding_rate", cells[1], Steps())
    if not rate.is_finite() or abs(rate) >= 1 or rate != rate.quantize(QUANTUM):
        raise ValueError(f"funding_rate {cells[1].strip()!r} is not a rate (a fraction below 1)")
    return FundingRow(floored, rate)


def read_funding_file(path: Path) -> list[FundingRow]:
    """The funding rates of a file, times floored to 8 h, ascending; ``PerpDataError`` naming
    the first bad line."""
    rows: list[FundingRow] = []
    for line, cells in _lines(path, FUNDING_HEADER):
        try:
            row = funding_row_from_cells(cells)
            if rows and row.funding_time <= rows[-1].funding_time:
                raise ValueError("funding times must be strictly ascending, one per interval")
        except ValueError as exc:
            raise PerpDataError(f"{path}, line {line}: {exc}; nothing was imported") from None
        rows.append(row)
    return rows


def _same_row(old: MarkRow, new: MarkRow) -> bool:
    for a, b in zip(old[1:], new[1:], strict=True):
        if (a is None) != (b is None) or (a is not None and b is not None and not _same(a, b)):
            return False
    return True


def mark_candles_import(
    *, exchange: str, symbol: str, timeframe: str, rows: list[MarkRow]
) -> ImportResult:
    """Store mark candles idempotently, all or none (see the module docstring)."""
    key = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
    with transaction.atomic():
        stored = {
            values[0]: MarkRow(*values)
            for values in MarkCandle.objects.filter(**key).values_list(*MarkRow._fields)
        }
        new = []
        for row in rows:
            old = stored.get(row.open_time)
            if old is None:
                new.append(MarkCandle(**key, **row._asdict()))
            elif not _same_row(old, row):
                raise PerpDataError(
                    f"mark candle {format_ms(row.open_time)} conflicts with the stored "
                    f"{exchange} {symbol} {timeframe} one; nothing was imported"
                )
        MarkCandle.objects.bulk_create(new, batch_size=2000)
    return ImportResult(created=len(new), unchanged=len(rows) - len(new))


def funding_rates_import(*, exchange: str, symbol: str, rows: list[FundingRow]) -> ImportResult:
    """Store funding rates idempotently, all or none."""
    with transaction.atomic():
        stored = dict(
            FundingRate.objects.filter(exchange=exchange, symbol=symbol).values_list(
                "funding_time", "rate"
            )
        )
        new = []
        for row in rows:
            old = stored.get(row.funding_time)
            if old is None:
                new.append(FundingRate(exchange=exchange, symbol=symbol, **row._asdict()))
            elif not _same(old, row.rate):
                raise PerpDataError(
                    f"funding rate {format_ms(row.funding_time)} {row.rate} conflicts with the "
                    f"stored {old}; nothing was imported"
                )
        FundingRate.objects.bulk_create(new, batch_size=2000)
    return ImportResult(created=len(new), unchanged=len(rows) - len(new))


@dataclass(frozen=True)
class PerpSampleSummary:
    symbol: str
    candles: dict[str, ImportResult]
    marks: dict[str, ImportResult]
    funding: ImportResult

    @property
    def created(self) -> int:
        parts = [*self.candles.values(), *self.marks.values(), self.funding]
        return sum(part.created for part in parts)


def perp_sample_load(*, exchange: str = "bitget") -> PerpSampleSummary:
    """Store the shipped XRP/USDT:USDT sample: 5m trade candles (and 15m, 1h, 4h, 1d resampled),
    1h and 8h mark candles, 91 funding rates. Idempotent, one transaction."""
    symbol = PERP_SAMPLE_SYMBOL
    steps = market_steps(exchange=exchange, symbol=symbol)
    name, timeframe = PERP_SAMPLE_TRADES
    trades = read_candle_file(PERP_DATA_DIR / name, timeframe=timeframe, steps=steps).rows
    with transaction.atomic():
        candles = {
            timeframe: candles_import(
                exchange=exchange, symbol=symbol, timeframe=timeframe, rows=trades
            )
        }
        candles |= candles_store_resampled(
            exchange=exchange,
            symbol=symbol,
            source=timeframe,
            targets=SAMPLE_TARGETS,
            since_ms=trades[0].open_time,
            until_ms=trades[-1].open_time + TIMEFRAME_MS[timeframe],
        )
        marks = {
            mark_tf: mark_candles_import(
                exchange=exchange,
                symbol=symbol,
                timeframe=mark_tf,
                rows=read_mark_file(PERP_DATA_DIR / mark_name, timeframe=mark_tf, steps=steps),
            )
            for mark_name, mark_tf in PERP_SAMPLE_MARKS
        }
        funding = funding_rates_import(
            exchange=exchange,
            symbol=symbol,
            rows=read_funding_file(PERP_DATA_DIR / PERP_SAMPLE_FUNDING),
        )
    summary = PerpSampleSummary(symbol=symbol, candles=candles, marks=marks, funding=funding)
    logger.info(
        "perp.sample_loaded",
        extra=context(exchange=exchange, symbol=symbol, new=summary.created),
    )
    return summary
