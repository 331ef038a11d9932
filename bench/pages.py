"""Benchmark: the trader's pages, rendered by the server, against a trivial page in the same run.

It migrates a throwaway SQLite database (``$TRADINGBOT_VAR_DIR``, or a temporary directory),
seeds what ``make run`` seeds (the demo trader, the shipped BTC/USDT candles, a finished
backtest and a replay bot), adds ``--trades`` fills to the bot (so that its trade list pages)
and then times, through Django's test client in this process (no network), ``--repeat`` GETs of:

- ``/dashboard/``, ``/bots/<id>/`` (its chart's 200 candles, markers and indicators embedded),
  ``/bots/new/`` (a form per strategy), ``/backtests/<id>/`` (the finished backtest: up to 1,000
  chart bars with volume and indicators, equity and drawdown curves, the report's breakdowns,
  trades), ``/backtests/``;
- the API reads behind the cockpit: the backtest's export (CSV, JSON), the bot's chart and equity
  curve, the trader's performance by day;
- the peer, ``/strategies/``: a plain page with four rows, same middleware and session.

It prints the median and p90 milliseconds, the page's size and the median's ratio to the peer's.
One machine, noisy: read the ratios.

    .venv/bin/python bench/pages.py [--repeat 30] [--trades 2000]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    os.environ.setdefault("TRADINGBOT_VAR_DIR", tempfile.mkdtemp(prefix="bench-pages-"))
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("LOG_LEVEL", "ERROR")  # no Redis here: the seed's events go nowhere
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")
    import django

    django.setup()


def seed(trades: int) -> tuple[object, int, int]:
    """The demo trader, their bot's id (with ``trades`` extra fills) and their backtest's id."""
    from django.core.management import call_command

    from accounts.models import User
    from backtests.models import Backtest
    from bots.models import Bot, Trade

    call_command("migrate", verbosity=0)
    call_command("seed_demo", stdout=io.StringIO())  # its logins are not this bench's output
    trader = User.objects.get(email="demo@example.com")
    bot = Bot.objects.filter(user=trader).first()
    backtest = Backtest.objects.filter(user=trader, status="done").first()
    assert bot is not None, "seed_demo made no bot"
    assert backtest is not None, "seed_demo made no finished backtest"
    order = bot.orders.first()
    if order is None:  # the demo bot has not ticked: book the fills on an order of its own
        order = bot.orders.create(
            client_order_id=f"bench-{bot.pk}", symbol=bot.symbol, side="buy",
            order_type="market", qty=Decimal("0.001"), status="closed", reason="signal",
            candle_ms=0,
        )  # fmt: skip
    start = datetime(2023, 1, 1, tzinfo=UTC)
    Trade.objects.bulk_create(
        Trade(bot=bot, order=order, symbol=bot.symbol, side="buy" if i % 2 else "sell",
              qty=Decimal("0.001"), price=Decimal(20000 + i), time=start + timedelta(minutes=i))
        for i in range(trades)
    )  # fmt: skip
    return trader, bot.pk, backtest.pk


def timed(client: object, path: str, repeat: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(repeat):
        begin = time.perf_counter()
        response = client.get(path)  # type: ignore[attr-defined]
        # a streamed answer (the CSV export) is produced as it is read: time the reading too
        body = b"".join(response.streaming_content) if response.streaming else response.content
        times.append((time.perf_counter() - begin) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        size = len(body)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--trades", type=int, default=2000)
    args = parser.parse_args()
    setup_django()
    from django.test import Client

    trader, bot_id, backtest_id = seed(args.trades)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(trader)  # type: ignore[arg-type]
    pages = [
        ("/strategies/ (peer)", "/strategies/"),
        ("/dashboard/", "/dashboard/"),
        (f"/bots/{bot_id}/", f"/bots/{bot_id}/"),
        ("/bots/new/", "/bots/new/"),
        (f"/backtests/{backtest_id}/", f"/backtests/{backtest_id}/"),
        ("/backtests/", "/backtests/"),
        ("backtest export csv", f"/api/backtests/{backtest_id}/export?format=csv"),
        ("backtest export json", f"/api/backtests/{backtest_id}/export?format=json"),
        ("bot chart API", f"/api/bots/{bot_id}/chart"),
        ("bot equity API", f"/api/bots/{bot_id}/equity"),
        ("performance API", "/api/performance?period=day"),
    ]
    for _, path in pages:  # warm caches and the market catalogue once
        client.get(path)
    print(f"{args.repeat} GETs each, SQLite, in-process test client; the bot has "
          f"{args.trades}+ fills")  # fmt: skip
    print(f"{'page':<24} {'p50 ms':>8} {'p90 ms':>8} {'KiB':>7} {'÷ peer':>7}")
    peer = None
    for label, path in pages:
        times, size = timed(client, path, args.repeat)
        p50 = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        peer = peer or p50
        print(f"{label:<24} {p50:8.1f} {p90:8.1f} {size / 1024:7.1f} {p50 / peer:6.1f}x")


if __name__ == "__main__":
    main()
