"""``manage.py import_candles``: a file, the sample, or an exchange fetch; clear refusals."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import connection

from markets.models import Candle
from tests.conftest import database_url
from tests.markets.test_candles import ROWS, BitgetKlines, stored

ROOT = Path(__file__).resolve().parents[2]
HEADER = "timestamp,open,high,low,close,volume"
FILE_ARGS = ["--exchange", "bitget", "--symbol", "BTC/USDT", "--timeframe", "5m"]


def write(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join([HEADER, *(",".join(row) for row in rows)]) + "\n")
    return path


def run(*args: str, stderr: io.StringIO | None = None) -> str:
    out = io.StringIO()
    call_command("import_candles", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


@pytest.fixture
def hour_file(tmp_path: Path) -> Path:
    """The 12 sample candles of 2023-01-03 00:00-00:55 UTC (lines 2 to 13)."""
    start = next(i for i, row in enumerate(ROWS) if row[0] == "1672704000000")
    return write(tmp_path / "hour.csv", ROWS[start : start + 12])


def test_it_imports_a_file_and_its_resamples(db: Any, hour_file: Path) -> None:
    # given / when
    output = run("--file", str(hour_file), *FILE_ARGS, "--resample", "15m,1h")

    # then one summary line
    assert output == (
        f"{hour_file}: bitget BTC/USDT 2023-01-03 00:00 UTC to 2023-01-03 00:55 UTC: "
        "5m 12 new, 0 unchanged; 15m 4 new, 0 unchanged; 1h 1 new, 0 unchanged\n"
    )
    assert len(stored("5m")) == 12
    assert stored("1h")[0][0] == 1_672_704_000_000

    # and a second run changes nothing
    assert "5m 0 new, 12 unchanged; 15m 0 new, 4 unchanged" in run(
        "--file", str(hour_file), *FILE_ARGS, "--resample", "15m,1h"
    )


def test_it_refuses_a_bad_file_naming_the_line_and_writes_nothing(db: Any, tmp_path: Path) -> None:
    # given a file whose fourth line has a high below its open (16707.4)
    rows = [list(row) for row in ROWS[:5]]
    rows[2][2] = "16707.0"
    path = write(tmp_path / "bad.csv", rows)

    # when
    with pytest.raises(CommandError) as caught:
        run("--file", str(path), *FILE_ARGS)

    # then
    assert str(caught.value) == f"{path}, line 4: high 16707.0 is below max(open, close) 16707.4"
    assert Candle.objects.count() == 0


def test_it_refuses_a_file_that_contradicts_stored_candles_and_writes_nothing(
    db: Any, tmp_path: Path
) -> None:
    # given the first 3 sample candles stored, and a file of the first 6 whose line 3 differs
    run("--file", str(write(tmp_path / "first.csv", ROWS[:3])), *FILE_ARGS)
    rows = [list(row) for row in ROWS[:6]]
    rows[1][5] = "1301.174"  # the stored volume is 1301.173
    path = write(tmp_path / "changed.csv", rows)

    # when
    with pytest.raises(CommandError) as caught:
        run("--file", str(path), *FILE_ARGS, "--resample", "15m")

    # then the new candles of the file were not stored either
    assert str(caught.value) == (
        f"{path}, line 3: candle 2023-01-02 16:50 UTC conflicts with the stored bitget BTC/USDT "
        "5m candle: volume 1301.174 given, 1301.173 stored; nothing was imported"
    )
    assert len(stored("5m")) == 3
    assert stored("15m") == []


def test_it_loads_the_sample(db: Any) -> None:
    # given the complete hours of the sample, counted with plain Python
    per_hour = Counter(int(row[0]) // 3_600_000 for row in ROWS)
    complete_hours = sum(1 for count in per_hour.values() if count == 12)

    # when
    output = run("--sample")

    # then
    assert Candle.objects.filter(timeframe="1h").count() == complete_hours == 916
    assert output == (
        "sample: bitget BTC/USDT: 5m 10999 new, 0 unchanged; 15m 3666 new, 0 unchanged; "
        "1h 916 new, 0 unchanged; 4h 228 new, 0 unchanged; 1d 37 new, 0 unchanged\n"
    )


F = "--exchange bitget --symbol BTC/USDT --timeframe 5m"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "nothing to import: give --file PATH, --sample or --since DATE"),
        ("--file {file} --symbol BTC/USDT --timeframe 7m", "unknown timeframe '7m'"),
        (
            "--since 2024-01-01 --symbol DOGE/EUR --timeframe 5m",
            "unknown symbol 'DOGE/EUR' on bitget",
        ),
        ("--file {file} --timeframe 5m", "--symbol is required"),
        ("--file {file} --symbol BTC/USDT", "--timeframe is required"),
        (f"--file {{dir}}/missing.csv {F}", "missing.csv: file not found"),
        (f"--file {{file}} --since 2024-01-01 {F}", "--file and --since cannot be combined"),
        ("--sample --file {file}", "--sample cannot be combined with --file or --since"),
        ("--sample --timeframe 1h", "--timeframe and --resample do not apply"),
        (f"--file {{file}} {F} --resample 1h,7m", "unknown timeframe '7m'"),
        (f"--file {{file}} {F} --timeframe 1h --resample 15m", "cannot resample 1h into 15m"),
        (f"--since 2024-02-30 {F}", "--since '2024-02-30' is not a date: use YYYY-MM-DD"),
        (
            f"--since 2024-01-02 --until 2024-01-01T12:00 {F}",
            "--until (2024-01-01 12:00 UTC) must be after --since (2024-01-02 00:00 UTC)",
        ),
        (f"--since 2999-01-01 {F}", "--since (2999-01-01 00:00 UTC) is in the future"),
        (f"--file {{file}} --until 2024-01-01 {F}", "--until only applies to a fetch"),
        (f"--since 2024-01-01 --allow-gaps {F}", "--allow-gaps only applies to --file"),
        ("--sample --exchange kraken", "invalid choice: 'kraken'"),
    ],
)
def test_it_refuses_bad_arguments_clearly(
    db: Any, hour_file: Path, args: str, message: str
) -> None:
    # given
    argv = args.format(file=hour_file, dir=hour_file.parent).split()

    # when
    with pytest.raises(CommandError) as caught:
        run(*argv)

    # then
    assert message in str(caught.value)
    assert Candle.objects.count() == 0


@pytest.mark.process
def test_it_exits_non_zero_without_a_traceback(db: Any, tmp_path: Path) -> None:
    # given a file with a gap after line 2
    path = write(tmp_path / "gap.csv", [ROWS[0], ROWS[2]])
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict)}

    # when
    process = subprocess.run(
        [sys.executable, "manage.py", "import_candles", "--file", str(path), *FILE_ARGS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    # then
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    assert f"{path}, line 3: gap: 1 5m candle missing" in process.stderr
    assert process.stdout == ""


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [False, True])
def test_it_fetches_from_the_exchange_with_a_progress_bar_only_on_a_terminal(
    db: Any, monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    # given Bitget (HTTP answered from the sample; it is long closed by now)
    transport = BitgetKlines(now_ms=int(ROWS[-1][0]) + 300_000)
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: transport)
    stderr = FakeTTY() if tty else io.StringIO()

    # when: 2023-02-09 00:00 to 12:00 UTC is 144 5m candles
    output = run(
        "--since", "2023-02-09", "--until", "2023-02-09T12:00", *FILE_ARGS,
        "--resample", "1h", stderr=stderr,
    )  # fmt: skip

    # then
    assert output == (
        "bitget BTC/USDT from 2023-02-09 00:00 UTC to 2023-02-09 12:00 UTC: "
        "5m 144 new, 0 unchanged; 1h 12 new, 0 unchanged\n"
    )
    assert len(transport.requests) == 1
    if tty:
        assert stderr.getvalue().startswith("\rbitget BTC/USDT 5m [")
        assert stderr.getvalue().endswith("] 100% 144/144\n")
    else:
        assert stderr.getvalue() == ""


def test_it_reports_an_unreachable_exchange(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given every request fails
    transport = BitgetKlines(now_ms=int(ROWS[-1][0]), fail_on=1)
    monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: transport)

    # when
    with pytest.raises(CommandError) as caught:
        run("--since", "2023-02-09", *FILE_ARGS)

    # then
    assert str(caught.value) == (
        "bitget: could not reach bitget. The pages fetched so far are stored; "
        "run the same command again to resume."
    )


# -- float noise --------------------------------------------------------------------------------

DOGE_ARGS = ["--exchange", "bitget", "--symbol", "DOGE/USDT", "--timeframe", "5m"]


def doge_stored() -> list[tuple[Any, ...]]:
    return list(
        Candle.objects.filter(exchange="bitget", symbol="DOGE/USDT", timeframe="5m")
        .order_by("open_time")
        .values_list("open", "high", "low", "close", "volume")
    )


def test_it_rounds_float_noise_to_the_market_tick_or_12_places_with_one_note(
    db: Any, tmp_path: Path
) -> None:
    # given a DOGE/USDT file (tick 0.00001, amount step 0.0001 in the catalogue) written with
    # ordinary float formatting, on two rows
    path = write(
        tmp_path / "doge.csv",
        [
            ["1672704000000", "0.07000000000000001", "0.1", "0.07", "0.09946999000000001", "5"],
            ["1672704300000", "0.0995", "0.1", "0.09", "0.0995", "12.340000000000002"],
        ],
    )

    # when
    output = run("--file", str(path), *DOGE_ARGS)

    # then one summary line carries one note; 0.09946999 is off the tick, so it keeps 12 places
    assert output == (
        f"{path}: bitget DOGE/USDT 2023-01-03 00:00 UTC to 2023-01-03 00:05 UTC: "
        "5m 2 new, 0 unchanged (rounded 3 values with float noise: 1 price to 12 decimal "
        "places, 1 price to 0.00001, 1 volume to 0.0001)\n"
    )
    assert doge_stored() == [
        (Decimal("0.07"), Decimal("0.1"), Decimal("0.07"), Decimal("0.09946999"), Decimal(5)),
        (Decimal("0.0995"), Decimal("0.1"), Decimal("0.09"), Decimal("0.0995"), Decimal("12.34")),
    ]

    # and the same file again is all unchanged (the rounded values match the stored ones)
    assert "5m 0 new, 2 unchanged (rounded 3 values" in run("--file", str(path), *DOGE_ARGS)


def test_it_refuses_real_over_precision_naming_line_and_column_and_writes_nothing(
    db: Any, tmp_path: Path
) -> None:
    # given a file with float noise on line 2 and a real 13th decimal place on line 3
    path = write(
        tmp_path / "doge.csv",
        [
            ["1672704000000", "0.07000000000000001", "0.1", "0.07", "0.09", "5"],
            ["1672704300000", "0.0995", "0.1", "0.09", "0.0994699900001", "1"],
        ],
    )

    # when
    with pytest.raises(CommandError) as caught:
        run("--file", str(path), *DOGE_ARGS)

    # then
    assert str(caught.value) == (
        f"{path}, line 3: close 0.0994699900001 has more than 12 decimal places"
    )
    assert Candle.objects.count() == 0


# --- a market outside the catalog: data only -----------------------------------------------------

ETH_BTC = ["--exchange", "bitget", "--symbol", "ETH/BTC", "--timeframe", "5m"]
ETH_BTC_ROWS = [
    ["1672704000000", "0.07383", "0.07391", "0.0738", "0.07388999000000001", "12.5"],
    ["1672704300000", "0.07386", "0.07390000000000001", "0.07384", "0.07388", "3.75"],
]


def test_a_file_of_a_market_outside_the_catalog_is_stored_as_data_only(
    db: Any, tmp_path: Path
) -> None:
    # given: ETH/BTC, which bitget's shipped catalog does not list (the reproducer)
    path = write(tmp_path / "ethbtc.csv", ETH_BTC_ROWS)
    # when
    output = run("--file", str(path), *ETH_BTC)
    # then: stored, the noise rounded to 12 places with the note, and said to be data only
    assert output.splitlines() == [
        f"{path}: bitget ETH/BTC 2023-01-03 00:00 UTC to 2023-01-03 00:05 UTC: 5m 2 new, "
        "0 unchanged (rounded 2 values with float noise: 2 prices to 12 decimal places)",
        "ETH/BTC is not on bitget's market list: stored as a data-only market (charts and "
        "backtests; bots need a listed market)",
    ]
    closes = Candle.objects.filter(symbol="ETH/BTC").order_by("open_time")
    assert [row.close for row in closes] == [Decimal("0.07388999"), Decimal("0.07388")]


def test_explicit_steps_round_a_data_only_market_to_its_tick(db: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "ethbtc.csv", ETH_BTC_ROWS)
    output = run("--file", str(path), *ETH_BTC, "--price-step", "0.00001")
    # 0.07388999 is off a 0.00001 tick: it keeps 12 places; 0.0739 is on it
    assert "1 price to 0.00001" in output
    assert "1 price to 12 decimal places" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbol", "eth-btc"], "'eth-btc' is not a market symbol: write it as BASE/QUOTE"),
        (["--symbol", "BTC/USDT", "--price-step", "0.1"], "has its rules on bitget"),
        (["--symbol", "ETH/BTC", "--price-step", "-1"], "must be a positive step"),
        (["--symbol", "ETH/BTC", "--amount-step", "x"], "'x' is not a number"),
    ],
)
def test_data_only_imports_refuse_bad_symbols_and_steps(
    db: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    path = write(tmp_path / "ethbtc.csv", ETH_BTC_ROWS)
    with pytest.raises(CommandError) as caught:
        run("--file", str(path), "--timeframe", "5m", *args)
    assert message in str(caught.value)
    assert Candle.objects.count() == 0


def test_a_fetch_still_needs_a_listed_market(db: Any) -> None:
    with pytest.raises(CommandError) as caught:
        run("--since", "2024-01-01", *ETH_BTC)
    assert "unknown symbol 'ETH/BTC' on bitget" in str(caught.value)
