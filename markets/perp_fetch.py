"""Fetching a perpetual swap's mark-price candles and funding-rate history from the exchange.

Both fetches store page by page (each page committed on its own) with the rules of the CSV
import in ``markets.perp_data`` (prices rounded to the market's tick, funding times floored to
the 8-hour boundary, a stamp more than ``FUNDING_SLACK_MS`` after it refused, a row that
contradicts the stored one refused), so a rerun after an interruption resumes where it stopped
and a rerun of a complete range stores nothing.

- Mark candles page forward in time like trade candles (``fetch_closed_candles``): from the
  first candle of the range not stored yet; a candle still open is never stored. Their volume
  is stored as none (mark prices are not traded).
- Funding rates: Bitget pages its history by page number, newest first, and ignores ``since``,
  so the fetch walks back in time from the page that holds the newest missing funding time
  of the range (estimated from the 8-hour grid, checked against the page) to the first one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from markets.candle_csv import Steps
from markets.candles import (
    FetchOutcome,
    ImportResult,
    PagedFetch,
    Progress,
    fetch_closed_candles,
)
from markets.models import FundingRate, MarkCandle
from markets.perp_data import (
    FundingRow,
    MarkRow,
    PerpDataError,
    funding_rates_import,
    funding_row_from_cells,
    mark_candles_import,
    mark_row_from_cells,
)
from markets.selectors import market_steps
from markets.timeframes import FUNDING_INTERVAL_MS, timeframe_ms
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)


class PerpDataSource(Protocol):
    """What the fetches need of an exchange adapter (``CcxtExchange`` has it)."""

    exchange_id: str

    def fetch_mark_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[float]]: ...

    def fetch_funding_rate_history(
        self,
        symbol: str,
        since: int | None = None,
        limit: int | None = None,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...


def _exchange_row(kind: str, entry: object, exc: ValueError) -> PerpDataError:
    return PerpDataError(f"the exchange returned a {kind} that cannot be stored: {entry!r}: {exc}")


def _mark_parser(step_ms: int, steps: Steps) -> Callable[[Sequence[object]], MarkRow]:
    def parse(candle: Sequence[object]) -> MarkRow:
        # Read by the CSV rules: prices as text, no volume (mark prices are not traded).
        cells = [str(int(candle[0])) if isinstance(candle[0], int | float) else ""]
        cells += ["" if value is None else str(value) for value in candle[1:5]] + [""]
        try:
            return mark_row_from_cells(cells, step_ms, steps)
        except ValueError as exc:
            raise _exchange_row("mark candle", list(candle), exc) from None

    return parse


def mark_candles_fetch_from_exchange(
    *,
    exchange: PerpDataSource,
    symbol: str,
    timeframe: str,
    since_ms: int,
    until_ms: int | None = None,
    page_limit: int = 200,
    progress: Progress | None = None,
    now_ms: int | None = None,
) -> ImportResult:
    """Fetch the closed mark candles opened in [since_ms, until_ms), page by page, resumable
    (see ``markets.candles.fetch_closed_candles``). Exchange failures propagate as the adapter
    raised them; a candle contradicting the stored one raises ``PerpDataError`` (the pages
    before it stay stored)."""
    key = {"exchange": exchange.exchange_id, "symbol": symbol, "timeframe": timeframe}
    steps = market_steps(exchange=exchange.exchange_id, symbol=symbol)
    source: PagedFetch[MarkRow] = PagedFetch(
        fetch=lambda cursor, limit: exchange.fetch_mark_ohlcv(
            symbol, timeframe, since=cursor, limit=limit
        ),
        parse=_mark_parser(timeframe_ms(timeframe), steps),
        store=lambda rows: mark_candles_import(**key, rows=rows),
        stored_times=lambda start, end: (
            MarkCandle.objects.filter(**key, open_time__gte=start, open_time__lt=end)
            .order_by("open_time")
            .values_list("open_time", flat=True)
        ),
    )
    outcome: FetchOutcome = fetch_closed_candles(
        source, timeframe=timeframe, since_ms=since_ms, until_ms=until_ms,
        page_limit=page_limit, progress=progress, now_ms=now_ms,
    )  # fmt: skip
    result = outcome.result
    logger.info(
        "perp.mark_candles_fetched",
        extra=context(**key, pages=outcome.pages, new=result.created, unchanged=result.unchanged),
    )
    return result


def _funding_rows(entries: Iterable[Mapping[str, Any]]) -> list[FundingRow]:
    rows = []
    for entry in entries:
        stamp, rate = entry.get("timestamp"), entry.get("fundingRate")
        try:
            if not isinstance(stamp, int | float) or rate is None:
                raise ValueError("no timestamp or no fundingRate")
            rows.append(funding_row_from_cells([str(int(stamp)), str(rate)]))
        except ValueError as exc:
            shown = {k: entry.get(k) for k in ("timestamp", "fundingRate")}
            raise _exchange_row("funding rate", shown, exc) from None
    return sorted(rows)


def _newest_missing(stored: set[int], *, start: int, before: int) -> int | None:
    """The latest funding time of [start, before) that is not stored, or None."""
    time_ = before - FUNDING_INTERVAL_MS
    while time_ >= start:
        if time_ not in stored:
            return time_
        time_ -= FUNDING_INTERVAL_MS
    return None


def _page_holding(funding_time: int, *, latest: int, limit: int) -> int:
    """The exchange's page (1: the newest ``limit`` rates) that holds ``funding_time`` when it
    has one rate every interval up to ``latest``; with fewer, it is this page or a newer one."""
    return (latest - funding_time) // FUNDING_INTERVAL_MS // limit + 1


def _funding_range(since_ms: int, until_ms: int | None, now_ms: int | None) -> tuple[int, int, int]:
    """[start, end) of the funding times to fetch, and the newest one that has happened."""
    interval = FUNDING_INTERVAL_MS
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    latest = now - now % interval
    end = latest + interval if until_ms is None else min(latest + interval, until_ms)
    return -(-since_ms // interval) * interval, end, latest


def funding_rates_fetch_from_exchange(
    *,
    exchange: PerpDataSource,
    symbol: str,
    since_ms: int,
    until_ms: int | None = None,
    page_limit: int = 100,
    progress: Progress | None = None,
    now_ms: int | None = None,
) -> ImportResult:
    """Fetch the funding rates of [since_ms, until_ms) (up to ``now_ms``, default the clock),
    page by page walking back in time, each page stored on its own; resumable: pages whose
    rates are all stored are not asked for. The page of a missing time is reckoned on the 8-hour
    grid (from the clock, then from the page just read); a page older than that time means the
    exchange has fewer rates, and the search halves back towards the newer pages. Stops at the
    first funding time of the range or when a page brings nothing. ``progress(done, total)``
    counts funding times of the range."""
    interval = FUNDING_INTERVAL_MS
    start, end, latest = _funding_range(since_ms, until_ms, now_ms)
    key = {"exchange": exchange.exchange_id, "symbol": symbol}
    stored = set(
        FundingRate.objects.filter(
            **key, funding_time__gte=start, funding_time__lt=end
        ).values_list("funding_time", flat=True)
    )
    total = max(0, -(-(end - start) // interval))
    result, pages = ImportResult(), 0
    missing = _newest_missing(stored, start=start, before=end)
    page_no = 0 if missing is None else _page_holding(missing, latest=latest, limit=page_limit)
    first_possible = 1  # every missing time is on this page or a later one
    while missing is not None:
        if progress is not None:
            progress(len(stored), total)
        entries = exchange.fetch_funding_rate_history(
            symbol, None, page_limit, params={"pageNo": page_no}
        )
        rows, pages = _funding_rows(entries), pages + 1
        if (not rows or rows[-1].funding_time < missing) and page_no > first_possible:
            # Fewer rates than the grid (a gap, or none lately): the time is on a newer page.
            page_no = (first_possible + page_no) // 2
            continue
        if not rows:
            break
        kept = [row for row in rows if start <= row.funding_time < end]
        if kept:
            result += funding_rates_import(**key, rows=kept)
            stored.update(row.funding_time for row in kept)
        missing = _newest_missing(stored, start=start, before=min(end, rows[0].funding_time))
        if missing is not None:
            first_possible = page_no + 1
            page_no += 1 + (rows[0].funding_time - missing - interval) // interval // page_limit
    if progress is not None:
        progress(len(stored), total)
    logger.info(
        "perp.funding_rates_fetched",
        extra=context(**key, pages=pages, new=result.created, unchanged=result.unchanged),
    )
    return result
