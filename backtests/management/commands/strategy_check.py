"""``manage.py strategy_check``: does a strategy look ahead, do its indicators depend on where the
data starts? (``strategies.checks``: the lookahead and the recursive analyses.)

    strategy_check ma_cross macd
    strategy_check --all [--candles 2000]
    strategy_check rsi_reversion --params '{"period": 21}' \\
        --exchange bitget --symbol BTC/USDT --timeframe 5m
    strategy_check my_strategy --warmups 300,600 --target 200 --tolerance 1e-4

Candles: the last ``--candles`` closed candles stored for the market given, else for the
market with the most stored candles, else the shipped BTC/USDT 5m sample file
(``backtests.strategy_checks``). Exits 0 when every strategy passes both analyses; otherwise 1,
with a line per failing strategy naming its first differing candle and column (or the indicator
that does not converge). An unknown strategy, bad parameters or too few candles is an error
(exit 1) before anything runs.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backtests.strategy_checks import (
    PAGE_CANDLES,
    CheckDataError,
    CheckMarket,
    check_candles,
    strategy_check_run,
)
from strategies.checks import CheckInputError, CheckSettings, StrategyCheck, report_lines
from strategies.params import StrategyParamError
from strategies.registry import active


class Command(BaseCommand):
    help = (
        "Run the lookahead and recursive analyses of strategies on stored candles; exit 1 "
        "naming the first differing candle when any strategy fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = CheckSettings()
        parser.add_argument("keys", nargs="*", help="strategy keys")
        parser.add_argument("--all", action="store_true", help="every registered strategy")
        parser.add_argument("--candles", type=int, default=PAGE_CANDLES,
                            help=f"the last N stored candles (default {PAGE_CANDLES})")  # fmt: skip
        parser.add_argument("--exchange", default="bitget")
        parser.add_argument("--symbol", help="with --timeframe: the market (default: the one "
                            "with the most stored candles)")  # fmt: skip
        parser.add_argument("--timeframe")
        parser.add_argument("--params", help="JSON object of parameters (one strategy only)")
        parser.add_argument("--cuts", type=int, default=defaults.cuts,
                            help="evenly spread cut points of the lookahead analysis")  # fmt: skip
        parser.add_argument("--random-cuts", type=int, default=defaults.random_cuts)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--target", type=int, default=defaults.target,
                            help="candles in the recursive analysis' target range")  # fmt: skip
        parser.add_argument("--warmups", default=",".join(map(str, defaults.warmups)),
                            help="warm-up lengths to compare, comma-separated")  # fmt: skip
        parser.add_argument("--tolerance", type=float, default=defaults.tolerance,
                            help="largest relative difference that converges")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        keys = self._keys(options["keys"], every=options["all"])
        params = self._params(options["params"], keys)
        settings = self._settings(options)
        candles = self._candles(options)
        self.stdout.write(
            f"{len(candles.frame)} candles of {candles.market} ({candles.source}); "
            f"{len(keys)} {'strategy' if len(keys) == 1 else 'strategies'}"
        )
        failures = []
        for key in keys:
            failure = self._check(key, params, candles, settings)
            if failure is not None:
                failures.append(failure)
        if failures:
            raise CommandError(
                f"{len(failures)} of {len(keys)} failed:\n" + "\n".join(failures), returncode=1
            )
        self.stdout.write(f"All {len(keys)} passed.")

    def _check(self, key: str, params: Any, candles: Any, settings: CheckSettings) -> str | None:
        """Run one strategy's check and print it; the failure's line, or None."""
        try:
            check: StrategyCheck = strategy_check_run(
                key=key, candles=candles, params=params, settings=settings
            )
        except StrategyParamError as exc:
            raise CommandError(f"{key}: bad --params: {exc}") from None
        except CheckInputError as exc:
            raise CommandError(f"{key}: {exc}; give more --candles") from None
        except Exception as exc:  # the strategy's own code failed: that strategy fails
            line = f"{key}: error: {type(exc).__name__}: {exc}"
            self.stdout.write(line)
            return line
        self.stdout.write("\n".join(report_lines(check)))
        return check.failure()

    def _keys(self, keys: list[str], *, every: bool) -> list[str]:
        registry = active()
        if every:
            if keys:
                raise CommandError("give strategy keys or --all, not both")
            return registry.keys()
        if not keys:
            raise CommandError("name the strategies to check, or --all")
        unknown = [key for key in keys if key not in registry]
        if unknown:
            raise CommandError(
                f"unknown strategy {', '.join(unknown)}; known: {', '.join(registry.keys())}"
            )
        return list(dict.fromkeys(keys))

    def _params(self, text: str | None, keys: list[str]) -> dict[str, Any] | None:
        if text is None:
            return None
        if len(keys) != 1:
            raise CommandError("--params applies to one strategy: name exactly one")
        try:
            params = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not JSON: {exc}") from None
        if not isinstance(params, dict):
            raise CommandError('--params must be a JSON object, e.g. {"fast": 5}')
        return params

    def _settings(self, options: dict[str, Any]) -> CheckSettings:
        try:
            warmups = tuple(int(part) for part in options["warmups"].split(",") if part.strip())
            return CheckSettings(
                cuts=options["cuts"],
                random_cuts=options["random_cuts"],
                seed=options["seed"],
                target=options["target"],
                warmups=warmups,
                tolerance=options["tolerance"],
            )
        except ValueError as exc:
            raise CommandError(f"bad analysis settings: {exc}") from None

    def _candles(self, options: dict[str, Any]) -> Any:
        if options["candles"] < 1:
            raise CommandError("--candles must be at least 1")
        symbol, timeframe = options["symbol"], options["timeframe"]
        if (symbol is None) != (timeframe is None):
            raise CommandError("give --symbol and --timeframe together (or neither)")
        market = None
        if symbol is not None:
            market = CheckMarket(options["exchange"], symbol, timeframe)
        try:
            return check_candles(market=market, limit=options["candles"])
        except CheckDataError as exc:
            raise CommandError(str(exc)) from None
