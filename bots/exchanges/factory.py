"""Which ``Exchange`` an account trades on: the paper ledger or the real exchange."""

from __future__ import annotations

from accounts.models import ExchangeAccount
from bots.exchanges.base import Exchange
from bots.exchanges.prices import PriceSource


def exchange_for_account(
    account: ExchangeAccount, *, prices: PriceSource | None = None
) -> Exchange:
    """A paper account fills against ``prices`` (default: the real exchange's last price)."""
    if account.mode == ExchangeAccount.Mode.PAPER:
        from bots.exchanges.ccxt_exchange import CcxtExchange
        from bots.exchanges.paper import PaperExchange
        from bots.exchanges.prices import LatestPrices

        source = prices or LatestPrices(account.exchange, CcxtExchange.public(account.exchange))
        return PaperExchange(account, prices=source)
    from bots.exchanges.ccxt_exchange import CcxtExchange

    return CcxtExchange.from_account(account)
