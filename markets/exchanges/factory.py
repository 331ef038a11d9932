"""Which ``Exchange`` an account trades on: the paper ledger or the real exchange."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from markets.exchanges.base import Exchange
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.paper import PaperExchange
from markets.exchanges.prices import LatestPrices, PriceSource
from markets.models import ExchangeAccount


class _PublicTicker:
    """The real exchange's public ticker, built on first use: reading a paper balance must not
    pay for a ccxt client it never calls."""

    def __init__(self, exchange_id: str) -> None:
        self.exchange_id = exchange_id

    @cached_property
    def _exchange(self) -> CcxtExchange:
        return CcxtExchange.public(self.exchange_id)

    def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        return self._exchange.fetch_ticker(symbol)


def exchange_for_account(
    account: ExchangeAccount, *, prices: PriceSource | None = None
) -> Exchange:
    """A paper account fills against ``prices`` (default: the real exchange's last price)."""
    if account.mode == ExchangeAccount.Mode.PAPER:
        source = prices or LatestPrices(account.exchange, _PublicTicker(account.exchange))
        return PaperExchange(account, prices=source)
    return CcxtExchange.from_account(account)
