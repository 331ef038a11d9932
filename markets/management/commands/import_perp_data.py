"""``manage.py import_perp_data``: store a perpetual swap's mark-price candles or funding rates
from a CSV file, the shipped XRP/USDT:USDT perp sample, or the exchange.

    import_perp_data --mark XRP-1h-mark.csv --symbol XRP/USDT:USDT --timeframe 1h
    import_perp_data --funding XRP-8h-funding_rate.csv --symbol XRP/USDT:USDT
    import_perp_data --sample
    import_perp_data --symbol XRP/USDT:USDT --since 2024-01-01 [--until 2024-02-01T12:00] \\
        --timeframe 1h [--only mark|funding] [--page-limit 200]

Mark files have the candle columns ``timestamp,open,high,low,close,volume`` (an empty volume is
stored as none, not zero); funding files ``timestamp,funding_rate``, the time floored to the 8-hour
boundary. Trade candles of a perp are imported with ``import_candles`` like any market's.
File imports are idempotent and all-or-nothing: a bad row is reported with its file line and
nothing is written.
A fetch (``--since``) stores the closed mark candles of ``--timeframe`` and the funding history
of the range (``--only`` one of them) through ccxt, page by page under the same rules, so running
the same command again after an interruption resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from markets import selectors
from markets.candle_csv import format_ms
from markets.candles import CandleDataError, ImportResult
from markets.exchanges.errors import ExchangeError
from markets.exchanges.markets import SUPPORTED_EXCHANGES
from markets.management.fetching import RESUME_HINT, fetch_range, progress_bar
from markets.perp_data import (
    MARK_TIMEFRAME_MS,
    PerpDataError,
    funding_rates_import,
    mark_candles_import,
    perp_sample_load,
    read_funding_file,
    read_mark_file,
)
from markets.perp_fetch import funding_rates_fetch_from_exchange, mark_candles_fetch_from_exchange
from markets.timeframes import TIMEFRAME_MS
from tradingbot.errors import AppError

ONLY = ("mark", "funding")
FUNDING_PAGE_MAX = 100  # Bitget's largest funding-history page


class Command(BaseCommand):
    help = (
        "Import a perp's mark-price candles (--mark FILE --timeframe TF) or funding rates "
        "(--funding FILE), the shipped XRP/USDT:USDT perp sample (--sample), or fetch both "
        "from the exchange (--since DATE --timeframe TF). Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--mark", help="mark-price candle CSV")
        source.add_argument("--funding", help="funding-rate CSV (timestamp,funding_rate)")
        source.add_argument("--sample", action="store_true", help="the shipped perp sample")
        source.add_argument(
            "--since", help="fetch from the exchange from this UTC date (YYYY-MM-DD[THH:MM])"
        )
        parser.add_argument("--until", help="with --since: stop before this UTC date")
        parser.add_argument("--exchange", default="bitget", choices=SUPPORTED_EXCHANGES)
        parser.add_argument("--symbol", help="the perp's unified symbol, e.g. XRP/USDT:USDT")
        parser.add_argument(
            "--timeframe",
            help=f"with --mark: {', '.join(MARK_TIMEFRAME_MS)}; with --since: "
            f"{', '.join(TIMEFRAME_MS)}",
        )
        parser.add_argument("--only", choices=ONLY, help="with --since: fetch only this")
        parser.add_argument(
            "--page-limit",
            type=int,
            help="with --since: rows per request (default 200 mark candles, 100 funding rates; "
            f"funding at most {FUNDING_PAGE_MAX})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        exchange = options["exchange"]
        if options["since"] is None:
            for option in ("until", "only", "page_limit"):
                if options[option] is not None:
                    raise CommandError(f"--{option.replace('_', '-')} only applies to --since")
        try:
            if options["sample"]:
                summary = perp_sample_load(exchange=exchange)
                self.stdout.write(
                    f"perp sample: {exchange} {summary.symbol}: {summary.created} new"
                )
                return
            symbol = self._perp_symbol(exchange, options["symbol"])
            if options["since"] is not None:
                self._fetch(exchange, symbol, options)
            elif options["mark"] is not None:
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

    # -- the exchange fetch --------------------------------------------------------------------

    def _fetch_timeframe(self, timeframe: str | None, only: str | None) -> str | None:
        if only == "funding":
            if timeframe:
                raise CommandError("--timeframe is for mark candles; --only funding has none")
            return None
        if not timeframe:
            raise CommandError(
                f"--timeframe is required for mark candles: one of {', '.join(TIMEFRAME_MS)} "
                "(or --only funding)"
            )
        if timeframe not in TIMEFRAME_MS:
            raise CommandError(
                f"unknown timeframe {timeframe!r} for fetched mark candles: use one of "
                f"{', '.join(TIMEFRAME_MS)}"
            )
        return timeframe

    def _fetch(self, exchange_id: str, symbol: str, options: dict[str, Any]) -> None:
        from markets.exchanges.ccxt_exchange import CcxtExchange

        timeframe = self._fetch_timeframe(options["timeframe"], options["only"])
        page_limit = options["page_limit"]
        if page_limit is not None and page_limit < 1:
            raise CommandError("--page-limit must be at least 1")
        since_ms, until_ms = fetch_range(options["since"], options["until"])
        try:
            exchange = CcxtExchange.public(exchange_id)
            market = exchange.catalog.market(symbol)
        except AppError as exc:
            raise CommandError(
                f"{exc.message}; a fetch needs a market {exchange_id} lists"
            ) from None
        if not market.get("swap"):
            raise CommandError(f"{symbol} is not a perpetual swap on {exchange_id}")
        mark_limit = {} if page_limit is None else {"page_limit": page_limit}
        funding_limit = (
            {} if page_limit is None else {"page_limit": min(page_limit, FUNDING_PAGE_MAX)}
        )
        label = f"{exchange_id} {symbol}"
        parts: list[tuple[str, ImportResult]] = []
        try:
            if timeframe is not None:
                mark = partial(
                    mark_candles_fetch_from_exchange, exchange=exchange, symbol=symbol,
                    timeframe=timeframe, since_ms=since_ms, until_ms=until_ms, **mark_limit,
                )  # fmt: skip
                parts.append(
                    (f"mark {timeframe}", self._with_bar(f"{label} mark {timeframe}", mark))
                )
            if options["only"] != "mark":
                funding = partial(
                    funding_rates_fetch_from_exchange, exchange=exchange, symbol=symbol,
                    since_ms=since_ms, until_ms=until_ms, **funding_limit,
                )  # fmt: skip
                parts.append(("funding rates", self._with_bar(f"{label} funding", funding)))
        except ExchangeError as exc:
            raise CommandError(f"{exchange_id}: {exc.message}. {RESUME_HINT}") from None
        except PerpDataError as exc:
            refused = exc.message.removesuffix("; nothing was imported")
            raise CommandError(
                f"{label}: {refused}; that page was not stored, the pages before it are"
            ) from None
        until = format_ms(until_ms) if until_ms is not None else "now"
        described = "; ".join(f"{n} {r.created} new, {r.unchanged} unchanged" for n, r in parts)
        self.stdout.write(f"{label} from {format_ms(since_ms)} to {until}: {described}")

    def _with_bar(self, label: str, fetch: Callable[..., ImportResult]) -> ImportResult:
        bar = progress_bar(self.stderr, label)
        try:
            return fetch(progress=bar)
        finally:
            if bar is not None:
                bar.close()
