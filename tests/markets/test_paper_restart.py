"""A paper account's balances and open orders live in the database, not in a process.

One process funds the account and places a resting limit order, and exits; a fresh process
reads them back through a new ``PaperExchange``. Both are real ``manage.py shell`` processes on
the test database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.db import connection

from markets.exchanges.paper import PaperExchange
from markets.exchanges.prices import FixedPrices
from tests.conftest import ROOT, database_url

pytestmark = pytest.mark.process  # starts processes of its own

T0 = 1_704_067_200_000
MARKER = "PAPER-RESULT "

PLACE = f"""
import json, os
from decimal import Decimal
from markets.models import ExchangeAccount
from markets.exchanges.paper import PaperExchange
from markets.exchanges.paper_ledger import fund
from markets.exchanges.prices import FixedPrices

account = ExchangeAccount.objects.get(pk=int(os.environ["PAPER_ACCOUNT_ID"]))
fund(account, {{"USDT": Decimal("10000")}})
paper = PaperExchange(account, prices=FixedPrices({{"BTC/USDT": Decimal("20000")}}, now_ms={T0}))
order = paper.create_order(
    "BTC/USDT", "limit", "buy", Decimal("0.01"), Decimal("19000"), client_order_id="restart-1"
)
print({MARKER!r} + json.dumps(order))
"""

READ = f"""
import json, os
from decimal import Decimal
from markets.models import ExchangeAccount
from markets.exchanges.paper import PaperExchange
from markets.exchanges.prices import FixedPrices

account = ExchangeAccount.objects.get(pk=int(os.environ["PAPER_ACCOUNT_ID"]))
paper = PaperExchange(
    account, prices=FixedPrices({{"BTC/USDT": Decimal("20500")}}, now_ms={T0 + 3_600_000})
)
print({MARKER!r} + json.dumps({{
    "balance": paper.fetch_balance(),
    "open_orders": paper.fetch_open_orders(),
    "by_client_id": paper.fetch_order(None, "BTC/USDT", client_order_id="restart-1"),
}}))
"""


def run_process(script, account_id):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "PAPER_ACCOUNT_ID": str(account_id),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    return json.loads(line.removeprefix(MARKER))


@pytest.mark.timeout(300)
def test_balances_and_open_orders_survive_a_restart_of_every_process(
    transactional_db, exchange_account_factory
):
    # given: an account the processes can see (transactional_db commits it)
    account = exchange_account_factory(mode="paper")
    # when: one process funds it and places a resting limit buy, then exits
    placed = run_process(PLACE, account.pk)
    # and: a fresh process reads the account through a new PaperExchange
    seen = run_process(READ, account.pk)
    # then: 0.01 x 19000 x 1.002 = 190.38 is held in used
    assert placed["status"] == "open"
    assert seen["balance"]["USDT"] == {"free": 9809.62, "used": 190.38, "total": 10000.0}
    assert seen["balance"]["used"] == {"USDT": 190.38}
    [order] = seen["open_orders"]
    assert order == placed
    assert (order["type"], order["side"], order["price"], order["amount"]) == (
        "limit",
        "buy",
        19000.0,
        0.01,
    )
    assert order["clientOrderId"] == "restart-1"
    assert order["timestamp"] == T0
    assert seen["by_client_id"] == placed
    # and: this process, which never touched the exchange, sees the same
    here = PaperExchange(account, prices=FixedPrices({}, now_ms=T0))
    assert here.fetch_open_orders() == seen["open_orders"]
    assert Decimal(here.fetch_balance()["info"]["balances"][0]["used"]) == Decimal("190.38")
