"""``manage.py refresh_markets [--exchange bitget]``: fetch the exchange's market metadata
(precision, minimums, fees) and store it as a new ``MarketSnapshot``, with the leverage /
maintenance-margin tiers (``fetchMarketLeverageTiers``) of the linear perps of the shipped
catalog (a market whose tiers cannot be read keeps the default tier: said in the summary).

The newest snapshot is what every order is rounded and checked against (``get_catalog``); other
processes pick it up within ``CATALOG_TTL_SECONDS``. A failed fetch stores nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from markets.exchanges import ccxt_swap
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.errors import ExchangeError
from markets.exchanges.markets import SUPPORTED_EXCHANGES, forget_catalogs, shipped_catalog
from markets.models import MarketSnapshot


class Command(BaseCommand):
    help = "Fetch the exchange's markets (precision, minimums, fees) and store a new snapshot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--exchange", default="bitget", choices=SUPPORTED_EXCHANGES)

    def handle(self, *args: Any, exchange: str, **options: Any) -> None:
        # Seeded with the shipped catalog, not the stored one: a refresh must work even when the
        # stored snapshot is what needs replacing. The markets themselves come from the exchange.
        client = CcxtExchange(exchange, catalog=shipped_catalog(exchange))
        try:
            markets = client.load_markets(reload=True)
        except ExchangeError as exc:
            raise CommandError(
                f"could not load the markets of {exchange}: {exc.message}; nothing was stored"
            ) from None
        if not markets:
            raise CommandError(f"{exchange} returned no markets; nothing was stored")
        missing = _add_tiers(client, markets, shipped_catalog(exchange).symbols)
        snapshot = MarketSnapshot.objects.create(exchange=exchange, markets=markets)
        forget_catalogs()
        by_type: dict[str, int] = {}
        for market in markets.values():
            kind = str(market.get("type") or "other")
            by_type[kind] = by_type.get(kind, 0) + 1
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(by_type.items()))
        tiers = sum(1 for market in markets.values() if market.get(ccxt_swap.TIERS_KEY))
        note = f"; no tiers for {', '.join(missing)} (the default tier applies)" if missing else ""
        self.stdout.write(
            f"Stored {len(markets)} {exchange} markets ({counts}) "
            f"as snapshot {snapshot.pk} of {snapshot.fetched_at:%Y-%m-%d %H:%M:%S} UTC; "
            f"leverage tiers of {tiers} perps{note}."
        )


def _add_tiers(client: CcxtExchange, markets: dict[str, Any], symbols: list[str]) -> list[str]:
    """Store the tiers of each linear perp among ``symbols`` in its market; the symbols whose
    tiers could not be read (or made sense of), which keep none."""
    missing = []
    for symbol in symbols:
        market = markets.get(symbol)
        if not market or not market.get("swap") or not market.get("linear"):
            continue
        try:
            rows = client.fetch_leverage_tiers(symbol)
            ccxt_swap.tiers_from_ccxt(rows)  # refuses rows that make no sense
        except ExchangeError:
            missing.append(symbol)
            continue
        market[ccxt_swap.TIERS_KEY] = rows
    return missing
