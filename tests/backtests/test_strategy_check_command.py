"""``manage.py strategy_check``: the built-ins pass on stored real candles; a user strategy that
peeks one candle ahead fails with a non-zero exit naming it, its first differing candle and the
column; clear refusals of bad arguments. Real database; the subprocess tests check the real exit
code (process tier)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from strategies.checks import lookahead_analysis, recursive_analysis
from strategies.registry import load_registry
from tests.backtests.conftest import SampleMarket
from tests.conftest import database_url
from tests.strategies import drifting_strategy, peeking_strategy, raising_strategy
from tests.strategies.drifting_strategy import DriftingStrategy
from tests.strategies.peeking_strategy import PeekingStrategy

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("strategy_check", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def user_strategies() -> Iterator[None]:
    """The peeking, drifting and raising test strategies loaded as STRATEGY_MODULES would load
    them; the configured registry back afterwards."""
    load_registry([peeking_strategy.MODULE, drifting_strategy.MODULE, raising_strategy.MODULE])
    yield
    load_registry(django_settings.STRATEGY_MODULES)


def last_candles(market: SampleMarket, count: int = 2000) -> Any:
    return market.frame().iloc[-count:].reset_index(drop=True)


def test_every_builtin_passes_on_the_stored_candles(sample_candles: SampleMarket) -> None:
    # when
    output = run("--all")

    # then the market with the most candles was read, its last 2,000, and all five passed
    assert output.startswith("2000 candles of bitget BTC/USDT 5m (stored); 5 strategies\n")
    for key in ("bollinger_breakout", "ma_cross", "macd", "rsi_reversion", "signals"):
        assert f"\n{key}: passed (2000 candles, " in output
    assert output.endswith("All 5 passed.\n")


def test_a_peeking_user_strategy_fails_naming_it_the_first_differing_candle_and_column(
    sample_candles: SampleMarket, user_strategies: None
) -> None:
    # given what the analysis finds on the same candles
    first = lookahead_analysis(PeekingStrategy(), last_candles(sample_candles)).first
    assert first is not None

    # when
    with pytest.raises(CommandError) as raised:
        run("ma_cross", "test_peeking")

    # then the command fails (exit status 1) and says who and where
    assert raised.value.returncode == 1
    message = str(raised.value)
    assert message.startswith("1 of 2 failed:\n")
    assert (
        f"test_peeking: lookahead: first differing candle {first.time_iso}, "
        f"column {first.column!r}" in message
    )
    assert "ma_cross" not in message


def test_a_strategy_whose_indicator_never_forgets_its_start_fails_the_recursive_analysis(
    sample_candles: SampleMarket, user_strategies: None
) -> None:
    column = recursive_analysis(DriftingStrategy(), last_candles(sample_candles)).failures[0]

    with pytest.raises(CommandError) as raised:
        run("test_drifting")

    assert str(raised.value) == f"1 of 1 failed:\ntest_drifting: recursive: {column.describe()}"


def test_a_strategy_whose_code_raises_fails_and_the_others_still_run(
    sample_candles: SampleMarket, user_strategies: None
) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("strategy_check", "test_raising", "macd", stdout=out, stderr=io.StringIO())
    assert str(raised.value) == (
        "1 of 2 failed:\ntest_raising: error: RuntimeError: this strategy is broken"
    )
    assert "\nmacd: passed (2000 candles" in out.getvalue()


def test_params_and_a_market_can_be_given(sample_candles: SampleMarket) -> None:
    output = run(
        "ma_cross", "--params", '{"fast": 5, "slow": 50, "ma": "ema"}', "--candles", "1500",
        "--exchange", "bitget", "--symbol", "BTC/USDT", "--timeframe", "5m",
    )  # fmt: skip
    assert output.startswith("1500 candles of bitget BTC/USDT 5m (stored); 1 strategy\n")
    assert "ma_cross: passed (1500 candles" in output


def test_without_stored_candles_it_checks_the_shipped_sample(db: Any) -> None:
    output = run("macd")
    assert output.startswith("2000 candles of bitget BTC/USDT 5m (the shipped sample file)")
    assert output.endswith("All 1 passed.\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown strategy nope; known: bollinger_breakout, ma_cross, macd, "),
        ([], "name the strategies to check, or --all"),
        (["--all", "macd"], "give strategy keys or --all, not both"),
        (["macd", "ma_cross", "--params", "{}"], "--params applies to one strategy"),
        (["macd", "--params", "[1]"], "--params must be a JSON object"),
        (["macd", "--params", "{fast"], "--params is not JSON"),
        (["macd", "--params", '{"fast": 40}'], "macd: bad --params: "),
        (["macd", "--candles", "300"], "macd: the checks need at least 301 candles, got 300"),
        (["macd", "--warmups", "0"], "bad analysis settings: warmups must be positive"),
        (["macd", "--symbol", "BTC/USDT"], "give --symbol and --timeframe together"),
        (["macd", "--symbol", "ETH/USDT", "--timeframe", "5m"], "no candles are stored for "
         "bitget ETH/USDT 5m"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_clearly(
    sample_candles: SampleMarket, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match="^" + message.replace("[", r"\[")):
        run(*args)


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict), **env}
    return subprocess.run(
        [sys.executable, "manage.py", "strategy_check", *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.process
def test_the_real_command_exits_0_for_the_builtins_and_1_for_a_peeking_module(db: Any) -> None:
    # given no stored candles (the shipped sample is read) and the peeking module configured
    # (the unknown key's exit status is call_command's above: one Django start fewer here)
    modules = {"STRATEGY_MODULES": peeking_strategy.MODULE}

    # when
    passing = _manage("ma_cross", "rsi_reversion", **modules)
    failing = _manage("ma_cross", "test_peeking", **modules)

    # then
    assert passing.returncode == 0, passing.stderr
    assert passing.stdout.endswith("All 2 passed.\n")
    assert failing.returncode == 1
    assert "Traceback" not in failing.stderr
    assert "CommandError: 1 of 2 failed:\ntest_peeking: lookahead: first differing candle " in (
        failing.stderr
    )
    assert "test_peeking: FAILED" in failing.stdout
