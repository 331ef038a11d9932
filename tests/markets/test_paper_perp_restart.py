"""A paper perp position, its margin and its funding live in the database, not in a process.

One process opens a long and settles a funding time, and exits; a fresh process settles the same
candles again and reads the position back through a new ``PaperExchange``: the funding was charged
once. Both are real ``manage.py shell`` processes on the test database.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from markets.models import FundingRate, PaperPosition
from tests.markets.test_paper_restart import run_process

pytestmark = pytest.mark.process  # starts processes of its own

T0 = 1_704_067_200_000
HOUR = 3_600_000
MARKER = "PAPER-RESULT "

SETUP = f"""
import dataclasses, json, os
from decimal import Decimal
from markets.models import ExchangeAccount
from markets.exchanges.paper import PaperExchange
from markets.exchanges.paper_ledger import fund
from markets.exchanges.prices import FixedPrices

account = ExchangeAccount.objects.get(pk=int(os.environ["PAPER_ACCOUNT_ID"]))
prices = FixedPrices({{"BTC/USDT:USDT": Decimal("20000")}}, now_ms={T0})
paper = PaperExchange(account, prices=prices)
"""

SETTLE = f"""
prices.now = {T0 + 9 * HOUR}
candles = [[{T0} + h * {HOUR}, 20000.0, 20100.0, 19900.0, 20000.0, 1.0] for h in range(9)]
paper.settle_perps("BTC/USDT:USDT", candles, timeframe="1h")
[position] = paper.fetch_positions()
print({MARKER!r} + json.dumps({{
    "position": {{k: str(v) for k, v in dataclasses.asdict(position).items()}},
    "balance": paper.fetch_balance()["USDT"],
}}))
"""

OPEN = (
    SETUP
    + """
fund(account, {"USDT": Decimal("1000")})
paper.set_leverage("BTC/USDT:USDT", 10)
paper.create_perp_order("BTC/USDT:USDT", "market", "buy", Decimal("0.1"), client_order_id="p-1")
"""
    + SETTLE
)
AGAIN = SETUP + SETTLE


@pytest.mark.timeout(300)
def test_a_position_and_its_funding_survive_a_restart_charged_once(
    transactional_db, exchange_account_factory
):
    # given: a funding time 8 h after the opening, at the trade candle's open of 20000
    account = exchange_account_factory(mode="paper")
    FundingRate.objects.create(
        exchange="bitget", symbol="BTC/USDT:USDT", funding_time=T0 + 8 * HOUR, rate=Decimal("0.001")
    )
    # when: one process opens a long (at 20010.0, margin 200.1, fee 1.2006) and settles
    opened = run_process(OPEN, account.pk)
    # and: a fresh process settles the same candles again
    again = run_process(AGAIN, account.pk)
    # then: 0.1 x 20000 x 0.001 = 2 paid once: 1000 - 201.3006 - 2
    assert opened == again
    assert again["balance"] == {"free": 796.6994, "used": 200.1, "total": 996.7994}
    position = again["position"]
    assert (position["side"], position["contracts"], position["leverage"]) == ("long", "0.1", "10")
    # BTC's first recorded tier (0.4 %): 20010 x 0.9 / 0.996 = 18081.325... rounded up
    assert position["liquidation_price"] == "18081.4"
    row = PaperPosition.objects.get(account=account)
    assert (row.funding, row.last_funding_ms) == (Decimal("-2"), T0 + 8 * HOUR)
