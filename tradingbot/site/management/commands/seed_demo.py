from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts import services as account_services
from backtests.services.demo import demo_backtest_seed, demo_perp_backtest_seed
from bots.services import demo_bot_seed
from markets.services import demo_market_seed

DEMO_EMAIL = "demo@example.com"
STAFF_EMAIL = "admin@example.com"


class Command(BaseCommand):
    help = (
        "Create (or refresh) the demo trader, a staff user, the sample candles, a funded "
        "paper account, finished backtests (spot and perp) and a running replay bot; print the "
        "logins."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args: Any, url: str, **options: Any) -> None:
        trader_password = secrets.token_urlsafe(12)
        staff_password = secrets.token_urlsafe(12)
        trader = account_services.demo_users_seed(
            trader_email=DEMO_EMAIL,
            trader_password=trader_password,
            staff_email=STAFF_EMAIL,
            staff_password=staff_password,
        )
        market = demo_market_seed(trader=trader)
        backtest = demo_backtest_seed(trader=trader)
        perp = demo_perp_backtest_seed(trader=trader)
        bot = demo_bot_seed(trader=trader)
        self.stdout.write(
            f"Sample candles: {market['candles']} ({market['created']} new); "
            f"perp sample XRP/USDT:USDT: {market['perp_created']} new rows; "
            f"paper account “{market['account']}” ready; demo backtest #{backtest.pk} "
            f"{backtest.status} ({backtest.trade_count} trades); demo perp backtest #{perp.pk} "
            f"{perp.status} ({perp.trade_count} trades, leverage {perp.leverage}); "
            f"demo bot “{bot.name}” "
            f"{bot.status} ({bot.data_source}, {bot.replay_speed:g} candles a minute)."
        )
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "=" * 64,
                    f"  Tradingbot is starting at {url}",
                    f"  Demo trader:  {DEMO_EMAIL}  /  {trader_password}",
                    f"  Staff (admin: {url}admin/):  {STAFF_EMAIL}  /  {staff_password}",
                    "  (new passwords are generated on every start)",
                    "=" * 64,
                    "",
                ]
            )
        )
