"""``manage.py import_candles``: store candles from a CSV file, the shipped sample, or an exchange.

    import_candles --file btc.csv.gz --exchange bitget --symbol BTC/USDT --timeframe 5m \\
        [--allow-gaps] [--resample 15m,1h,4h]
    import_candles --file ethbtc.csv --symbol ETH/BTC --timeframe 1h \\
        [--price-step 0.00001 --amount-step 0.0001]
    import_candles --sample
    import_candles --exchange bitget --symbol BTC/USDT --timeframe 1h --since 2024-01-01 \\
        [--until 2024-02-01T12:00] [--resample 4h,1d]

Imports are idempotent. A file import is all-or-nothing: any problem (reported with its file
line) leaves the database as it was. Float noise (``0.09946999000000001``) is rounded to the
market's tick or amount step, else 12 places, and the summary line says how many values were.
A file may hold a market the exchange's catalog does not list: it is stored as a *data-only*
market (backtests and charts, no bots), its noise rounded to ``--price-step``/``--amount-step``
when given, else to 12 places.
An exchange fetch stores page by page, so running the same command again after an interruption
resumes where it stopped.
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from markets import candles, selectors
from markets.candle_csv import QUANTUM, CandleFileError, Steps, format_ms, read_candle_file
from markets.candles import CandleDataError, ImportResult
from markets.exchanges.errors import ExchangeError
from markets.exchanges.markets import SUPPORTED_EXCHANGES, get_catalog
from markets.management.fetching import RESUME_HINT, fetch_range, progress_bar
from markets.timeframes import TIMEFRAME_MS, TIMEFRAMES


def _describe(results: dict[str, ImportResult]) -> str:
    return "; ".join(
        f"{timeframe} {result.created} new, {result.unchanged} unchanged"
        for timeframe, result in results.items()
    )


# A unified symbol: BASE/QUOTE, or BASE/QUOTE:SETTLE for a swap (ccxt's notation).
SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{1,15}/[A-Z0-9]{1,15}(:[A-Z0-9]{1,15})?")


def _step(text: str) -> Decimal:
    try:
        step = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not step.is_finite() or step <= 0 or step < QUANTUM:
        raise argparse.ArgumentTypeError(f"{text} must be a positive step of at least {QUANTUM}")
    return step


class Command(BaseCommand):
    _data_only = False
    help = (
        "Import candles from a CSV file (timestamp,open,high,low,close,volume), the shipped "
        "BTC/USDT sample (--sample), or an exchange (--since). Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_argument_group("source (one of)")
        source.add_argument("--file", help="CSV file, plain or .gz")
        source.add_argument(
            "--sample",
            action="store_true",
            help="the shipped BTC/USDT 5m sample, with 15m, 1h, 4h and 1d resampled",
        )
        source.add_argument(
            "--since", help="fetch from the exchange from this UTC date (YYYY-MM-DD[THH:MM])"
        )
        parser.add_argument(
            "--until", help="with --since: stop before this UTC date (default: now)"
        )
        parser.add_argument("--exchange", default="bitget", choices=SUPPORTED_EXCHANGES)
        parser.add_argument("--symbol", help="unified symbol, e.g. BTC/USDT or BTC/USDT:USDT")
        parser.add_argument("--timeframe", help=f"one of {', '.join(TIMEFRAMES)}")
        parser.add_argument(
            "--allow-gaps", action="store_true", help="with --file: accept missing candles"
        )
        parser.add_argument(
            "--resample",
            default="",
            help="also store these higher timeframes, comma-separated (e.g. 15m,1h,4h)",
        )
        parser.add_argument(
            "--page-limit", type=int, default=200, help="with --since: candles per request"
        )
        parser.add_argument(
            "--price-step",
            type=_step,
            help="with --file, a market outside the catalog: its price tick (e.g. 0.00001)",
        )
        parser.add_argument(
            "--amount-step",
            type=_step,
            help="with --file, a market outside the catalog: its amount step (e.g. 0.0001)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        file, sample, since = options["file"], options["sample"], options["since"]
        if file is not None and since is not None:
            raise CommandError(
                "--file and --since cannot be combined: import a file, or fetch from the exchange"
            )
        if sample and (file is not None or since is not None):
            raise CommandError("--sample cannot be combined with --file or --since")
        if not sample and file is None and since is None:
            raise CommandError("nothing to import: give --file PATH, --sample or --since DATE")
        if options["until"] is not None and since is None:
            raise CommandError("--until only applies to a fetch (--since)")
        if options["allow_gaps"] and file is None:
            raise CommandError("--allow-gaps only applies to --file")
        if options["page_limit"] < 1:
            raise CommandError("--page-limit must be at least 1")
        exchange = options["exchange"]
        if sample:
            if options["timeframe"] or options["resample"]:
                raise CommandError(
                    "--sample is 5m candles resampled to 15m, 1h, 4h and 1d; "
                    "--timeframe and --resample do not apply"
                )
            symbol = self._symbol(exchange, options["symbol"] or "BTC/USDT")
            self._sample(exchange, symbol)
            return
        if not options["symbol"]:
            raise CommandError("--symbol is required (e.g. --symbol BTC/USDT)")
        explicit = Steps(price=options["price_step"], amount=options["amount_step"])
        symbol, steps = self._symbol_and_steps(
            exchange, options["symbol"], explicit, from_file=file is not None
        )
        timeframe = self._timeframe(options["timeframe"])
        targets = self._targets(timeframe, options["resample"])
        if file is not None:
            self._file(
                Path(file), exchange, symbol, timeframe, targets, options["allow_gaps"], steps
            )
        else:
            since_ms, until_ms = fetch_range(since, options["until"])
            self._fetch(
                exchange, symbol, timeframe, targets, since_ms, until_ms, options["page_limit"]
            )

    # -- argument checks ---------------------------------------------------------------------

    def _symbol(self, exchange: str, symbol: str) -> str:
        markets = self._markets(exchange)
        if symbol not in markets:
            near = sorted(s for s in markets if s.split("/")[0] == symbol.split("/")[0])
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise CommandError(f"unknown symbol {symbol!r} on {exchange}{hint}")
        return symbol

    def _markets(self, exchange: str) -> dict[str, Any]:
        try:
            return get_catalog(exchange).markets
        except ExchangeError as exc:
            raise CommandError(exc.message) from None

    def _symbol_and_steps(
        self, exchange: str, symbol: str, explicit: Steps, *, from_file: bool
    ) -> tuple[str, Steps]:
        """The symbol and what its float noise rounds to. A file may bring a market outside the
        catalog (data only), rounded to the steps given; a catalog market has its own rules."""
        given = explicit.price is not None or explicit.amount is not None
        if symbol in self._markets(exchange):
            if given:
                raise CommandError(
                    f"--price-step and --amount-step are for a market outside the catalog; "
                    f"{symbol} has its rules on {exchange}"
                )
            return symbol, selectors.market_steps(exchange=exchange, symbol=symbol)
        if not from_file:
            return self._symbol(exchange, symbol), explicit  # a fetch needs a listed market
        if not SYMBOL_PATTERN.fullmatch(symbol):
            raise CommandError(
                f"{symbol!r} is not a market symbol: write it as BASE/QUOTE in capitals "
                "(ETH/BTC), or BASE/QUOTE:SETTLE for a swap"
            )
        self._data_only = True
        return symbol, explicit

    def _timeframe(self, timeframe: str | None) -> str:
        if not timeframe:
            raise CommandError(f"--timeframe is required: one of {', '.join(TIMEFRAMES)}")
        if timeframe not in TIMEFRAME_MS:
            raise CommandError(
                f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}"
            )
        return timeframe

    def _targets(self, timeframe: str, text: str) -> list[str]:
        targets = [t.strip() for t in text.split(",") if t.strip()]
        for target in targets:
            self._timeframe(target)
            if TIMEFRAME_MS[target] <= TIMEFRAME_MS[timeframe] or (
                TIMEFRAME_MS[target] % TIMEFRAME_MS[timeframe]
            ):
                raise CommandError(f"--resample: cannot resample {timeframe} into {target}")
        return list(dict.fromkeys(targets))

    # -- the three sources -------------------------------------------------------------------

    def _file(
        self,
        path: Path,
        exchange: str,
        symbol: str,
        timeframe: str,
        targets: list[str],
        allow_gaps: bool,
        steps: Steps,
    ) -> None:
        if not path.is_file():
            raise CommandError(f"{path}: file not found")
        try:
            candle_file = read_candle_file(
                path, timeframe=timeframe, allow_gaps=allow_gaps, steps=steps
            )
        except CandleFileError as exc:
            raise CommandError(str(exc)) from None
        rows = candle_file.rows
        stage = "import"
        try:
            with transaction.atomic():
                results = {
                    timeframe: candles.candles_import(
                        exchange=exchange, symbol=symbol, timeframe=timeframe, rows=rows
                    )
                }
                stage = "resample"
                results |= candles.candles_store_resampled(
                    exchange=exchange,
                    symbol=symbol,
                    source=timeframe,
                    targets=targets,
                    since_ms=rows[0].open_time,
                    until_ms=rows[-1].open_time + TIMEFRAME_MS[timeframe],
                )
        except CandleDataError as exc:
            row = exc.details.get("row")
            if stage == "import" and isinstance(row, int):
                line = candle_file.lines[row - 1]
                raise CommandError(
                    f"{path}, line {line}: {exc.details['reason']}; nothing was imported"
                ) from None
            raise CommandError(f"{path}: {exc.message}; nothing was imported") from None
        note = f" ({candle_file.rounding_note})" if candle_file.rounded else ""
        self.stdout.write(
            f"{path}: {exchange} {symbol} {format_ms(rows[0].open_time)} to "
            f"{format_ms(rows[-1].open_time)}: {_describe(results)}{note}"
        )
        if self._data_only:
            self.stdout.write(
                f"{symbol} is not on {exchange}'s market list: stored as a data-only market "
                "(charts and backtests; bots need a listed market)"
            )

    def _sample(self, exchange: str, symbol: str) -> None:
        try:
            summary = candles.candles_load_sample(exchange=exchange, symbol=symbol)
        except CandleDataError as exc:
            raise CommandError(f"sample: {exc.message}; nothing was imported") from None
        self.stdout.write(f"sample: {exchange} {symbol}: {_describe(summary.results)}")

    def _fetch(
        self,
        exchange_id: str,
        symbol: str,
        timeframe: str,
        targets: list[str],
        since_ms: int,
        until_ms: int | None,
        page_limit: int,
    ) -> None:
        from markets.exchanges.ccxt_exchange import CcxtExchange

        exchange = CcxtExchange.public(exchange_id)
        bar = progress_bar(self.stderr, f"{exchange_id} {symbol} {timeframe}")
        try:
            result = candles.candles_fetch_from_exchange(
                exchange=exchange,
                symbol=symbol,
                timeframe=timeframe,
                since_ms=since_ms,
                until_ms=until_ms,
                page_limit=page_limit,
                progress=bar,
            )
            results = {timeframe: result}
            results |= candles.candles_store_resampled(
                exchange=exchange_id,
                symbol=symbol,
                source=timeframe,
                targets=targets,
                since_ms=since_ms,
                until_ms=until_ms,
            )
        except ExchangeError as exc:
            raise CommandError(f"{exchange_id}: {exc.message}. {RESUME_HINT}") from None
        except CandleDataError as exc:
            raise CommandError(f"{exchange_id} {symbol} {timeframe}: {exc.message}") from None
        finally:
            if bar is not None:
                bar.close()
        until = format_ms(until_ms) if until_ms is not None else "now"
        self.stdout.write(
            f"{exchange_id} {symbol} from {format_ms(since_ms)} to {until}: {_describe(results)}"
        )
