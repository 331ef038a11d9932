"""``manage.py refresh_markets [--exchange bitget]``: fetch the exchange's market metadata
(precision, minimums, fees) and store it as a new ``MarketSnapshot``.

The newest snapshot is what every order is rounded and checked against (``get_catalog``); other
processes pick it up within ``CATALOG_TTL_SECONDS``. A failed fetch stores nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

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
        snapshot = MarketSnapshot.objects.create(exchange=exchange, markets=markets)
        forget_catalogs()
        by_type: dict[str, int] = {}
        for market in markets.values():
            kind = str(market.get("type") or "other")
            by_type[kind] = by_type.get(kind, 0) + 1
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(by_type.items()))
        self.stdout.write(
            f"Stored {len(markets)} {exchange} markets ({counts}) "
            f"as snapshot {snapshot.pk} of {snapshot.fetched_at:%Y-%m-%d %H:%M:%S} UTC."
        )
