"""``manage.py import_perp_data``: store a perpetual swap's mark-price candles or funding rates
from a CSV file, or the shipped XRP/USDT:USDT perp sample.

    import_perp_data --mark XRP-1h-mark.csv --symbol XRP/USDT:USDT --timeframe 1h
    import_perp_data --funding XRP-8h-funding_rate.csv --symbol XRP/USDT:USDT
    import_perp_data --sample

Mark files have the candle columns ``timestamp,open,high,low,close,volume`` (an empty volume is
stored as none, not zero); funding files ``timestamp,funding_rate``, the time floored to the 8-hour
boundary. Trade candles of a perp are imported with ``import_candles`` like any market's.
Idempotent and all-or-nothing: a bad row is reported with its file line and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from markets import selectors
from markets.candles import CandleDataError
from markets.exchanges.markets import SUPPORTED_EXCHANGES
from markets.perp_data import (
    MARK_TIMEFRAME_MS,
    PerpDataError,
    funding_rates_import,
    mark_candles_import,
    perp_sample_load,
    read_funding_file,
    read_mark_file,
)
from tradingbot.errors import AppError


class Command(BaseCommand):
    help = (
        "Import a perp's mark-price candles (--mark FILE --timeframe TF) or funding rates "
        "(--funding FILE), or the shipped XRP/USDT:USDT perp sample (--sample). Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--mark", help="mark-price candle CSV")
        source.add_argument("--funding", help="funding-rate CSV (timestamp,funding_rate)")
        source.add_argument("--sample", action="store_true", help="the shipped perp sample")
        parser.add_argument("--exchange", default="bitget", choices=SUPPORTED_EXCHANGES)
        parser.add_argument("--symbol", help="the perp's unified symbol, e.g. XRP/USDT:USDT")
        parser.add_argument("--timeframe", help=f"with --mark: {', '.join(MARK_TIMEFRAME_MS)}")

    def handle(self, *args: Any, **options: Any) -> None:
        exchange = options["exchange"]
        try:
            if options["sample"]:
                summary = perp_sample_load(exchange=exchange)
                self.stdout.write(
                    f"perp sample: {exchange} {summary.symbol}: {summary.created} new"
                )
                return
            symbol = self._perp_symbol(exchange, options["symbol"])
            if options["mark"] is not None:
                self._mark(Path(options["mark"]), exchange, symbol, options["timeframe"])
            else:
                path = Path(options["funding"])
                result = funding_rates_import(
                    exchange=exchange, symbol=symbol, rows=read_funding_file(path)
                )
                self.stdout.write(
                    f"{path}: {exchange} {symbol} funding rates: {result.created} new, "
                    f"{result.unchanged} unchanged"
                )
        except (PerpDataError, CandleDataError) as exc:
            raise CommandError(exc.message) from None

    def _perp_symbol(self, exchange: str, symbol: str | None) -> str:
        if not symbol:
            raise CommandError("--symbol is required (e.g. --symbol XRP/USDT:USDT)")
        try:
            selectors.check_symbol(exchange=exchange, symbol=symbol)
        except AppError as exc:
            raise CommandError(exc.message) from None
        if ":" not in symbol:
            raise CommandError(f"{symbol} is a spot market; mark prices and funding are perps'")
        return symbol

    def _mark(self, path: Path, exchange: str, symbol: str, timeframe: str | None) -> None:
        if not timeframe:
            raise CommandError(f"--timeframe is required: one of {', '.join(MARK_TIMEFRAME_MS)}")
        steps = selectors.market_steps(exchange=exchange, symbol=symbol)
        rows = read_mark_file(path, timeframe=timeframe, steps=steps)
        result = mark_candles_import(
            exchange=exchange, symbol=symbol, timeframe=timeframe, rows=rows
        )
        self.stdout.write(
            f"{path}: {exchange} {symbol} mark {timeframe}: {result.created} new, "
            f"{result.unchanged} unchanged"
        )
