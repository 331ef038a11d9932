"""Candle files: CSV (plain or gzip) with the header ``timestamp,open,high,low,close,volume``.

Pure Python, no Django. ``timestamp`` is the candle's open time in epoch milliseconds (UTC), as
ccxt gives it; prices and volume are decimals. A file is checked completely before anything is
used: every problem is reported with its file line (the header is line 1), up to
``max_problems`` of them, in a ``CandleFileError``.

Checks: the header; six columns; numbers that are finite, not negative (prices positive), with
at most 12 decimal places and 16 integer digits (what the database stores exactly), except that
float noise is rounded (see ``denoise``);
``low <= min(open, close)``, ``high >= max(open, close)``; an open time aligned to the
timeframe; strictly ascending open times (an identical repeated row is skipped, a repeated
open time with other values is an error); no missing candle unless ``allow_gaps``.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple, TextIO

from markets.timeframes import timeframe_ms

HEADER = ("timestamp", "open", "high", "low", "close", "volume")
VALUE_COLUMNS = HEADER[1:]
PRICE_COLUMNS = ("open", "high", "low", "close")
DECIMAL_PLACES = 12  # bots.models.PRICE
MAX_VALUE = Decimal(10) ** 16  # 28 digits, 12 of them decimals
QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)
# Float noise: what ordinary float formatting writes for a value that went through binary
# arithmetic (0.1 * 3 is 0.30000000000000004): 16 or 17 significant digits, which rounding
# changes by at most 1e-9 of the value (a generous bound on float error). A wider change, fewer
# or more digits, is real precision and refused as before.
NOISE_DIGITS = (16, 17)
NOISE_RELATIVE = Decimal("1e-9")
# An open time below this is a date before 1973 in milliseconds, or (far likelier) seconds.
MIN_PLAUSIBLE_MS = 10**11


class CandleRow(NamedTuple):
    open_time: int  # epoch milliseconds, UTC
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Problem:
    line: int | None  # file line (header = 1); None for the file as a whole
    message: str

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


class CandleFileError(ValueError):
    """A candle file that cannot be imported. ``problems`` lists each one with its line."""

    def __init__(self, name: str, problems: list[Problem], *, more: bool = False) -> None:
        self.name = name
        self.problems = problems
        self.more = more
        super().__init__(self._message())

    @property
    def line(self) -> int | None:
        """The line of the first problem."""
        return self.problems[0].line if self.problems else None

    def _message(self) -> str:
        if len(self.problems) == 1 and not self.more:
            return f"{self.name}, {self.problems[0]}"
        count = f"{len(self.problems)}{'+' if self.more else ''}"
        lines = [f"{self.name}: {count} problems", *(f"  {p}" for p in self.problems)]
        if self.more:
            lines.append("  (stopped there; fix these and run again)")
        return "\n".join(lines)


@dataclass(frozen=True)
class Steps:
    """What float noise is rounded to: the market's price tick and amount step when known
    (each used only when at least ``QUANTUM``), else ``QUANTUM`` (12 decimal places)."""

    price: Decimal | None = None
    amount: Decimal | None = None

    def of(self, column: str) -> Decimal:
        step = self.price if column in PRICE_COLUMNS else self.amount
        return step if step is not None and step >= QUANTUM else QUANTUM


def _step_name(step: Decimal) -> str:
    return "12 decimal places" if step == QUANTUM else f"{step.normalize():f}"


@dataclass
class CandleFile:
    """The rows of a valid file, ascending, and the file line each came from. ``rounded``
    counts the values whose float noise was rounded, by (kind, step): kind is "price" or
    "volume"."""

    name: str
    timeframe: str
    rows: list[CandleRow] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rounded: Counter[tuple[str, Decimal]] = field(default_factory=Counter)

    @property
    def rounding_note(self) -> str:
        """One sentence on the rounded values, or "" when none was."""
        if not self.rounded:
            return ""
        total = sum(self.rounded.values())
        parts = [
            f"{count} {kind}{'s' if count > 1 else ''} to {_step_name(step)}"
            for (kind, step), count in sorted(self.rounded.items())
        ]
        values = "value" if total == 1 else "values"
        return f"rounded {total} {values} with float noise: {', '.join(parts)}"


def format_ms(ms: int) -> str:
    """``2023-01-02 16:45 UTC`` for an epoch-millisecond time."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def value_problem(column: str, value: Decimal) -> str | None:
    """What is wrong with one price or volume value, if anything."""
    if value.is_nan():
        return f"{column} is NaN"
    if value.is_infinite():
        return f"{column} is infinite"
    if value < 0:
        return f"{column} {value} is negative"
    if column in PRICE_COLUMNS and value == 0:
        return f"{column} is 0; prices must be positive"
    if value >= MAX_VALUE:
        return f"{column} {value} is too large (at most 16 digits before the point)"
    if value != value.quantize(QUANTUM):
        return f"{column} {value} has more than {DECIMAL_PLACES} decimal places"
    return None


def denoise(value: Decimal, steps: Steps, column: str) -> tuple[Decimal, Decimal] | None:
    """``value`` rounded to its step (the market's, else 12 places) and the step used, when
    the value has more than 12 decimal places only through float noise; else None.

    The market's step is tried first, then 12 places: 0.09946999000000001 on a market with a
    0.00001 tick is 0.09946999 (0.09947 would change it by 1e-7, more than noise).
    """
    if not value.is_finite() or value.adjusted() >= 16 or value == value.quantize(QUANTUM):
        return None
    if len(value.as_tuple().digits) not in NOISE_DIGITS:
        return None
    for step in dict.fromkeys((steps.of(column), QUANTUM)):
        rounded = value.quantize(step)
        if abs(rounded - value) <= abs(value) * NOISE_RELATIVE:
            return rounded, step
    return None


class _Value(NamedTuple):
    value: Decimal | None
    problem: str | None
    step: Decimal | None = None  # the step float noise was rounded to, if it was


def _number(column: str, text: str, steps: Steps) -> _Value:
    text = text.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        return _Value(None, f"{column} {text!r} is not a number")
    step = None
    denoised = denoise(value, steps, column)
    if denoised is not None:
        value, step = denoised
    problem = value_problem(column, value)
    return _Value(None, problem) if problem else _Value(value, None, step)


def _open_time(text: str) -> tuple[int | None, str | None]:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        return None, f"timestamp {text!r} is not a whole number of epoch milliseconds"
    value = int(text)
    if value < MIN_PLAUSIBLE_MS:
        return None, f"timestamp {text} looks like seconds; expected epoch milliseconds"
    return value, None


def candle_problems(row: CandleRow, *, timeframe: str, values: bool = False) -> list[str]:
    """What is wrong with one candle on its own: price consistency and alignment, and with
    ``values`` each value too (a parsed file row has had those checked already)."""
    problems = []
    if values:
        for column, value in zip(VALUE_COLUMNS, row[1:], strict=True):
            problem = value_problem(column, value)
            if problem:
                problems.append(problem)
        if problems:
            return problems
    if row.low > row.high:
        problems.append(f"low {row.low} is above high {row.high}")
    if row.high < max(row.open, row.close):
        problems.append(f"high {row.high} is below max(open, close) {max(row.open, row.close)}")
    if row.low > min(row.open, row.close):
        problems.append(f"low {row.low} is above min(open, close) {min(row.open, row.close)}")
    if row.open_time % timeframe_ms(timeframe):
        problems.append(
            f"timestamp {row.open_time} ({format_ms(row.open_time)}) is not aligned to "
            f"the {timeframe} timeframe"
        )
    return problems


def _parse_line(
    cells: list[str], steps: Steps
) -> tuple[CandleRow | None, list[str], int | None, list[tuple[str, Decimal]]]:
    """The row, its value problems, the open time when at least that parsed, and the
    (kind, step) of each value whose float noise was rounded."""
    open_time, problem = _open_time(cells[0])
    if len(cells) != len(HEADER):
        # The open time still counts for the order checks of the lines after it.
        columns = f"expected {len(HEADER)} columns ({','.join(HEADER)}), found {len(cells)}"
        return None, [columns], open_time, []
    problems = []
    if problem:
        problems.append(problem)
    values = []
    rounded = []
    for column, text in zip(VALUE_COLUMNS, cells[1:], strict=True):
        number = _number(column, text, steps)
        if number.problem:
            problems.append(number.problem)
        if number.step is not None:
            rounded.append(("price" if column in PRICE_COLUMNS else "volume", number.step))
        values.append(number.value)
    if problems or open_time is None:
        return None, problems, open_time, []
    row = CandleRow(open_time, *values)  # type: ignore[arg-type]
    return row, [], open_time, rounded


def source_name(source: str | Path | TextIO) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return str(getattr(source, "name", "<stream>"))


class _Checker:
    """Checks rows one file line at a time and collects the good ones and the problems."""

    def __init__(
        self, name: str, timeframe: str, allow_gaps: bool, max_problems: int, steps: Steps
    ) -> None:
        self.step = timeframe_ms(timeframe)
        self.steps = steps
        self.timeframe = timeframe
        self.allow_gaps = allow_gaps
        self.max_problems = max_problems
        self.result = CandleFile(name=name, timeframe=timeframe)
        self.problems: list[Problem] = []
        self.more = False
        self.previous: CandleRow | None = None  # the last good row
        self.last_time: int | None = None  # the latest open time seen, good row or not
        self.last_time_line = 0

    def report(self, line: int | None, message: str) -> bool:
        """Record a problem; False once enough have been collected."""
        if len(self.problems) >= self.max_problems:
            self.more = True
            return False
        self.problems.append(Problem(line, message))
        return True

    def header(self, cells: list[str] | None) -> bool:
        expected = ",".join(HEADER)
        if cells is None or not any(cell.strip() for cell in cells):
            return self.report(1, f"the file is empty; expected the header {expected!r}")
        if tuple(cell.strip().lower() for cell in cells) != HEADER:
            self.report(1, f"header is {','.join(cells)!r}; expected {expected!r}")
            return False
        return True

    def _order_problem(self, open_time: int) -> str | None:
        last, last_line = self.last_time, self.last_time_line
        if last is None:
            return None
        if open_time == last:
            return (
                f"timestamp {open_time} ({format_ms(open_time)}) repeats line {last_line} "
                "with different values"
            )
        if open_time < last:
            return (
                f"timestamp {open_time} ({format_ms(open_time)}) is not after line {last_line} "
                f"({format_ms(last)}); rows must be in ascending time order"
            )
        if not self.allow_gaps and open_time - last > self.step and open_time % self.step == 0:
            missing = (open_time - last) // self.step - 1
            return (
                f"gap: {missing} {self.timeframe} candle{'s' if missing > 1 else ''} missing "
                f"between line {last_line} ({format_ms(last)}) and this line "
                f"({format_ms(open_time)})"
            )
        return None

    def row(self, line: int, cells: list[str]) -> bool:
        """Check one data line; False once enough problems have been collected."""
        if not any(cell.strip() for cell in cells):
            return True  # a blank line
        row, problems, open_time, rounded = _parse_line(cells, self.steps)
        if row is not None:
            if row == self.previous:
                return True  # the same candle twice: harmless
            problems = candle_problems(row, timeframe=self.timeframe)
        if open_time is not None:
            order_problem = self._order_problem(open_time)
            if order_problem:
                problems.append(order_problem)
            aligned = open_time % self.step == 0
            if aligned and (self.last_time is None or open_time > self.last_time):
                self.last_time, self.last_time_line = open_time, line
        if problems:
            return self.report(line, "; ".join(problems))
        assert row is not None
        self.previous = row
        self.result.rounded.update(rounded)
        self.result.rows.append(row)
        self.result.lines.append(line)
        return True

    def check(self, lines: Iterator[str]) -> None:
        reader = csv.reader(lines)
        if not self.header(next(reader, None)):
            return
        for cells in reader:
            if not self.row(reader.line_num, cells):
                return

    def outcome(self) -> CandleFile:
        if not self.problems and not self.result.rows:
            self.report(2, "no candles after the header")
        if self.problems:
            raise CandleFileError(self.result.name, self.problems, more=self.more)
        return self.result


def read_candle_file(
    source: str | Path | TextIO,
    *,
    timeframe: str,
    allow_gaps: bool = False,
    max_problems: int = 20,
    steps: Steps | None = None,
) -> CandleFile:
    """Parse and check a whole candle file; raise ``CandleFileError`` listing its problems.

    ``source`` is a path (``.gz`` is decompressed) or an open text stream. A value with float
    noise is rounded to ``steps`` (the market's tick and amount step; 12 places without) and
    counted in ``rounded``. Raises ``TimeframeError`` for an unknown timeframe.
    """
    checker = _Checker(source_name(source), timeframe, allow_gaps, max_problems, steps or Steps())
    try:
        if not isinstance(source, str | Path):
            checker.check(source)
        elif Path(source).suffix == ".gz":
            with gzip.open(source, "rt", encoding="utf-8-sig", newline="") as stream:
                checker.check(stream)
        else:
            with Path(source).open(encoding="utf-8-sig", newline="") as stream:
                checker.check(stream)
    except FileNotFoundError:
        checker.report(None, "file not found")
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        # A corrupt gzip stream, a binary file, a NUL byte...
        last = checker.result.lines[-1] if checker.result.lines else None
        where = f" after line {last}" if last else ""
        checker.report(None, f"cannot read the file{where}: {exc}")
    return checker.outcome()


def read_candles(
    source: str | Path | TextIO, *, timeframe: str, allow_gaps: bool = False
) -> list[CandleRow]:
    """The candles of a file, ascending. See ``read_candle_file``."""
    return read_candle_file(source, timeframe=timeframe, allow_gaps=allow_gaps).rows
