from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from markets.timeframes import TIMEFRAMES
from tradingbot.site.smoke import SmokeCheck, SmokeOptions, format_table

PASSWORD_VARIABLE = "SMOKE_CHECK_PASSWORD"  # noqa: S105 - a variable name, not a secret


class Command(BaseCommand):
    help = (
        "Run the release checklist against a running deployment over HTTP and WebSocket (never "
        "its database), print a PASS/FAIL table and exit non-zero on any failure. What the run "
        "creates (bot, backtest, paper account, API token) is removed again."
    )
    # A client of another deployment: this process's own system checks (and database) are
    # beside the point, and must not be what fails a deploy gate.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="base URL, e.g. https://bots.example.com")
        parser.add_argument("--email", required=True, help="a trader login to check with")
        parser.add_argument(
            "--password", help=f"its password (default: the {PASSWORD_VARIABLE} variable)"
        )
        parser.add_argument("--exchange", default="bitget")
        parser.add_argument("--symbol", default="BTC/USDT")
        parser.add_argument("--timeframe", default="5m", choices=TIMEFRAMES)
        parser.add_argument("--ws-rounds", type=int, default=20, help="WebSocket connections")
        parser.add_argument(
            "--backtest-timeout", type=float, default=120.0, help="seconds for the backtest"
        )
        parser.add_argument("--timeout", type=float, default=15.0, help="seconds per request")

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or os.environ.get(PASSWORD_VARIABLE)
        if not password:
            raise CommandError(f"give --password or set {PASSWORD_VARIABLE}")
        smoke = SmokeOptions(
            url=options["url"],
            email=options["email"],
            password=password,
            exchange=options["exchange"],
            symbol=options["symbol"],
            timeframe=options["timeframe"],
            ws_rounds=options["ws_rounds"],
            backtest_timeout=options["backtest_timeout"],
            http_timeout=options["timeout"],
        )
        results = SmokeCheck(smoke).run()
        self.stdout.write(format_table(results))
        failed = [result.name for result in results if not result.passed]
        if failed:
            raise CommandError(f"smoke check failed: {', '.join(failed)}")
