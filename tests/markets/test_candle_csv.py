"""Reading and checking candle CSV files (pure Python, no database)."""

from __future__ import annotations

import gzip
import io
from decimal import Decimal
from pathlib import Path

import pytest

from markets.candle_csv import CandleFileError, CandleRow, Steps, read_candle_file, read_candles

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "markets" / "data" / "btc_usdt_5m.csv.gz"
HEADER = "timestamp,open,high,low,close,volume"
T0 = 1_672_677_900_000  # 2023-01-02 16:45 UTC
STEP = 300_000  # 5m

# Four consecutive real 5m candles from the sample: lines 2 to 5 of the file.
GOOD = [
    f"{T0},16727.3,16728.8,16726.0,16726.1,691.508",
    f"{T0 + STEP},16726.0,16726.8,16705.0,16707.5,1301.173",
    f"{T0 + 2 * STEP},16707.4,16711.8,16704.0,16704.1,566.041",
    f"{T0 + 3 * STEP},16704.1,16709.9,16702.6,16709.9,800.432",
]


def text(lines: list[str]) -> io.StringIO:
    stream = io.StringIO("\n".join([HEADER, *lines]) + "\n")
    stream.name = "candles.csv"
    return stream


def problem_of(lines: list[str], **options: bool) -> CandleFileError:
    with pytest.raises(CandleFileError) as caught:
        read_candle_file(text(lines), timeframe="5m", **options)
    return caught.value


def test_it_parses_a_good_file_into_exact_decimals() -> None:
    # given / when
    parsed = read_candle_file(text(GOOD), timeframe="5m")

    # then
    assert len(parsed.rows) == 4
    assert parsed.rows[1] == CandleRow(
        T0 + STEP,
        Decimal("16726.0"),
        Decimal("16726.8"),
        Decimal("16705.0"),
        Decimal("16707.5"),
        Decimal("1301.173"),
    )
    assert parsed.lines == [2, 3, 4, 5]
    assert parsed.name == "candles.csv"


def test_it_reads_a_gzip_file_and_windows_line_endings(tmp_path: Path) -> None:
    # given the same candles, gzip-compressed, with CRLF line ends and a byte-order mark
    path = tmp_path / "candles.csv.gz"
    path.write_bytes(gzip.compress(("\ufeff" + "\r\n".join([HEADER, *GOOD]) + "\r\n").encode()))

    # when
    rows = read_candles(path, timeframe="5m")

    # then
    assert rows == read_candles(text(GOOD), timeframe="5m")


def test_it_reads_the_shipped_sample() -> None:
    # given / when
    rows = read_candles(SAMPLE, timeframe="5m")

    # then 10,999 gapless candles, 2023-01-02 16:45 to 2023-02-09 21:15 UTC
    assert len(rows) == 10_999
    assert rows[0].open_time == T0
    assert rows[-1].open_time == 1_675_977_300_000
    assert rows[-1].open_time - rows[0].open_time == 10_998 * STEP
    assert rows[:4] == read_candles(text(GOOD), timeframe="5m")


def test_it_skips_an_identical_repeated_row_and_blank_lines() -> None:
    # given the second candle twice and an empty line
    lines = [GOOD[0], GOOD[1], GOOD[1], "", GOOD[2], GOOD[3]]

    # when
    parsed = read_candle_file(text(lines), timeframe="5m")

    # then
    assert [row.open_time for row in parsed.rows] == [T0 + i * STEP for i in range(4)]
    assert parsed.lines == [2, 3, 6, 7]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (f"{T0 + STEP},16726.0,16726.8,16705.0,16707.5", "expected 6 columns"),
        (f"{T0 + STEP},16726.0,16726.8,16705.0,16707.5,1,2", "found 7"),
        (f"{T0 + STEP},abc,16726.8,16705.0,16707.5,1", "open 'abc' is not a number"),
        (f"{T0 + STEP},16726.0,NaN,16705.0,16707.5,1", "high is NaN"),
        (f"{T0 + STEP},16726.0,16726.8,16705.0,inf,1", "close is infinite"),
        (f"{T0 + STEP},16726.0,16726.8,16705.0,16707.5,-3", "volume -3 is negative"),
        (f"{T0 + STEP},0,16726.8,16705.0,16707.5,1", "open is 0; prices must be positive"),
        (f"{T0 + STEP},16726.0,16726.8,16705.0,16707.5,1.0000000000001", "12 decimal places"),
        (f"{T0 + STEP},16726.0,16726.8,16715.0,16707.5,1", "low 16715.0 is above min(open, "),
        (f"{T0 + STEP},16726.0,16720.0,16705.0,16707.5,1", "high 16720.0 is below max(open, "),
        (f"{T0 + STEP},16710.0,16700.0,16705.0,16702.0,1", "low 16705.0 is above high 16700.0"),
        (f"{T0 + STEP + 60_000},16726.0,16726.8,16705.0,16707.5,1", "not aligned to the 5m"),
        (f"{T0 // 1000 + 300},16726.0,16726.8,16705.0,16707.5,1", "looks like seconds"),
        ("2023-01-02,16726.0,16726.8,16705.0,16707.5,1", "not a whole number of epoch"),
        (f"{T0},16727.3,16728.8,16726.0,16726.1,700", "repeats line 2 with different values"),
        (f"{T0 - STEP},16726.0,16726.8,16705.0,16707.5,1", "is not after line 2"),
        (GOOD[2], "gap: 1 5m candle missing"),
    ],
)
def test_it_names_the_line_and_the_problem(bad_line: str, message: str) -> None:
    # given a file whose third line (the second candle) is bad
    lines = [GOOD[0], bad_line]

    # when
    error = problem_of(lines)

    # then
    assert error.line == 3
    assert str(error).startswith("candles.csv, line 3: ")
    assert message in str(error)


def test_it_accepts_gaps_when_asked() -> None:
    # given the first and fourth candles only
    lines = [GOOD[0], GOOD[3]]

    # when
    rows = read_candles(text(lines), timeframe="5m", allow_gaps=True)

    # then
    assert [row.open_time for row in rows] == [T0, T0 + 3 * STEP]
    assert "gap: 2 5m candles missing between line 2 (2023-01-02 16:45 UTC)" in str(
        problem_of(lines)
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("time,open,high,low,close,volume", "header is 'time,open,high,low,close,volume'"),
        (GOOD[0], "expected 'timestamp,open,high,low,close,volume'"),
    ],
)
def test_it_refuses_a_wrong_header_on_line_1(header: str, message: str) -> None:
    # given
    stream = io.StringIO("\n".join([header, *GOOD]))

    # when
    with pytest.raises(CandleFileError) as caught:
        read_candles(stream, timeframe="5m")

    # then
    assert caught.value.line == 1
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [("", 1, "the file is empty"), (HEADER + "\n", 2, "no candles after the header")],
)
def test_it_refuses_a_file_without_candles(content: str, line: int, message: str) -> None:
    # given / when
    with pytest.raises(CandleFileError) as caught:
        read_candles(io.StringIO(content), timeframe="5m")

    # then
    assert caught.value.line == line
    assert message in str(caught.value)


def test_it_lists_every_problem_with_its_line_up_to_a_limit() -> None:
    # given problems on lines 3 and 5, and 30 more misaligned rows after them
    lines = [
        GOOD[0],
        GOOD[1].replace("1301.173", "x"),
        GOOD[2],
        GOOD[3].replace(",16702.6,", ",16704.5,"),
        *(f"{T0 + 4 * STEP + i * STEP + 1},1,1,1,1,1" for i in range(30)),
    ]

    # when
    error = problem_of(lines)

    # then the first problems are in order, the count stops at 20, and nothing else is read
    assert [problem.line for problem in error.problems][:3] == [3, 5, 6]
    assert len(error.problems) == 20
    assert error.more
    message = str(error)
    assert message.startswith("candles.csv: 20+ problems\n  line 3: volume 'x' is not a number")
    assert "\n  line 5: low 16704.5 is above min(open, close) 16704.1\n" in message


def test_it_reports_a_missing_file_and_a_corrupt_gzip(tmp_path: Path) -> None:
    # given
    corrupt = tmp_path / "candles.csv.gz"
    corrupt.write_bytes(b"not gzip at all")

    # when / then
    with pytest.raises(CandleFileError, match=r"missing\.csv, file not found"):
        read_candles(tmp_path / "missing.csv", timeframe="5m")
    with pytest.raises(CandleFileError, match="cannot read the file: Not a gzipped file"):
        read_candles(corrupt, timeframe="5m")


# -- float noise --------------------------------------------------------------------------------


def test_it_rounds_float_noise_to_12_places_without_market_steps() -> None:
    # given a file written with ordinary float formatting (0.1 * 0.9946999 and the like)
    lines = [
        f"{T0},0.09946999000000001,0.30000000000000004,0.09,0.1,691.5080000000001",
        f"{T0 + STEP},0.0995,0.1,0.09,0.0995,1301.173",
    ]

    # when
    parsed = read_candle_file(text(lines), timeframe="5m")

    # then the noise is gone, the clean row is as given, and one note counts the rounding
    assert parsed.rows[0][1:] == (
        Decimal("0.09946999"),
        Decimal("0.3"),
        Decimal("0.09"),
        Decimal("0.1"),
        Decimal("691.508"),
    )
    assert parsed.rows[1].close == Decimal("0.0995")
    assert parsed.rounding_note == (
        "rounded 3 values with float noise: 2 prices to 12 decimal places, "
        "1 volume to 12 decimal places"
    )


def test_it_rounds_float_noise_to_the_market_tick_when_that_is_noise() -> None:
    # given a DOGE/USDT-like market: price tick 0.00001, amount step 0.0001
    steps = Steps(price=Decimal("0.00001"), amount=Decimal("0.0001"))
    lines = [
        f"{T0},0.07000000000000001,0.1,0.06999999999999999,0.09946999000000001,12.340000000000002"
    ]

    # when
    parsed = read_candle_file(text(lines), timeframe="5m", steps=steps)

    # then 0.07 and the volume are on their steps; 0.09946999 is not on the tick, and rounding
    # it to the tick (0.09947) would change it by 1e-7 of itself, more than noise: 12 places
    row = parsed.rows[0]
    assert row[1:] == (
        Decimal("0.07"),
        Decimal("0.1"),
        Decimal("0.07"),
        Decimal("0.09946999"),
        Decimal("12.34"),
    )
    assert parsed.rounding_note == (
        "rounded 4 values with float noise: 1 price to 12 decimal places, "
        "2 prices to 0.00001, 1 volume to 0.0001"
    )


def test_it_has_no_note_without_noise() -> None:
    # when / then
    assert read_candle_file(text(GOOD), timeframe="5m").rounding_note == ""


@pytest.mark.parametrize(
    ("value", "column"),
    [
        ("0.0994699900001", "open"),  # 13 places, 12 significant digits: real precision
        ("0.0000012345678901234567", "close"),  # 17 digits, but 12 places change it by 9e-8
        ("0.000000123456789012345", "close"),  # 15 digits: a tiny real price
        ("0.099469990000000000001", "high"),  # 20 significant digits: not a float's
        ("5.00000000000001", "volume"),  # 15 digits
    ],
)
def test_it_still_refuses_real_over_precision_naming_the_line_and_column(
    value: str, column: str
) -> None:
    # given a value whose extra places are not float noise, in the second candle
    cells = {"open": "0.0995", "high": "0.1", "low": "0.00000001", "close": "0.0995", "volume": "1"}
    cells[column] = value
    bad = ",".join([str(T0 + STEP), *cells.values()])

    # when
    error = problem_of([f"{T0},0.0995,0.1,0.09,0.0995,1", bad])

    # then today's error, naming the line and the column
    assert error.line == 3
    assert str(error).startswith(f"candles.csv, line 3: {column} ")
    assert str(error).endswith(" has more than 12 decimal places")
    assert Decimal(str(error).split()[4]) == Decimal(value)
