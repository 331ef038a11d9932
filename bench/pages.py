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
- ``/optimizations/<id>/``: a finished optimisation of ``--trials`` trials (default 200) of the
  demo backtest's configuration, two parameters searched, recorded as its workers record them
  (about a tenth skipped, a few failed; values, metrics, importances), so the page embeds every
  complete trial for its history and parallel-coordinates charts and lists the first 50;
- the peer, ``/strategies/``: a plain page with four rows, same middleware and session.

It prints the median and p90 milliseconds, the page's size and the median's ratio to the peer's.
One machine, noisy: read the ratios.

    .venv/bin/python bench/pages.py [--repeat 30] [--trades 2000] [--trials 200]
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


SEARCHED = {"fast": {"low": 3, "high": 40, "step": 1}, "slow": {"low": 30, "high": 200, "step": 5}}


def seed_optimization(trader: object, backtest_id: int, trials: int) -> int:
    """A finished optimisation of ``trials`` trials of the demo backtest's configuration and
    period (fast and slow searched), written as its workers write them: its id."""
    import random

    from django.utils import timezone

    from backtests.models import CONFIG_FIELDS, Backtest, Optimization, OptimizationTrial

    backtest = Backtest.objects.get(pk=backtest_id)
    rng = random.Random(7)
    now = timezone.now()
    states = ["complete"] * 18 + ["pruned", "failed"]
    optimization = Optimization.objects.create(
        user=trader, **{field: getattr(backtest, field) for field in CONFIG_FIELDS[2:]},
        strategy_id=backtest.strategy_id, params={"ma": "sma"}, start=backtest.start,
        end=backtest.end, status="done", candle_count=backtest.candle_count, sampler="tpe",
        seed=7, trial_count=trials, claimed_count=trials, space=SEARCHED,
        objectives=[{"sharpe": 1.0}], importances={"slow": 0.62, "fast": 0.38},
        started_at=now, finished_at=now,
    )  # fmt: skip
    rows = []
    for number in range(trials):
        state = rng.choice(states)
        params = {"ma": "sma", "fast": rng.randint(3, 40), "slow": rng.randrange(30, 201, 5)}
        value = rng.gauss(0, 2) if state == "complete" else None
        metrics = {**(backtest.metrics or {}), "sharpe": value} if value is not None else None
        rows.append(OptimizationTrial(
            optimization=optimization, number=number, params=params, state=state, value=value,
            values=None if value is None else [value], metrics=metrics, started_at=now,
            finished_at=now, worker="bench",
            error="" if state == "complete" else "The strategy rejects these parameters: …",
        ))  # fmt: skip
    OptimizationTrial.objects.bulk_create(rows)
    done = [row for row in rows if row.state == "complete"]
    best = max(done, key=lambda row: row.value or 0)
    Optimization.objects.filter(pk=optimization.pk).update(
        done_count=len(done),
        pruned_count=sum(row.state == "pruned" for row in rows),
        failed_count=sum(row.state == "failed" for row in rows),
        best_trial=best.number, best_params=best.params, best_value=best.value,
        best_metrics=best.metrics,
    )  # fmt: skip
    return optimization.pk


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
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    setup_django()
    from django.test import Client

    trader, bot_id, backtest_id = seed(args.trades)
    optimization_id = seed_optimization(trader, backtest_id, args.trials)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(trader)  # type: ignore[arg-type]
    pages = [
        ("/strategies/ (peer)", "/strategies/"),
        ("/dashboard/", "/dashboard/"),
        (f"/bots/{bot_id}/", f"/bots/{bot_id}/"),
        ("/bots/new/", "/bots/new/"),
        (f"/backtests/{backtest_id}/", f"/backtests/{backtest_id}/"),
        ("/backtests/", "/backtests/"),
        (f"/optimizations/{optimization_id}/", f"/optimizations/{optimization_id}/"),
        ("/optimizations/", "/optimizations/"),
        ("backtest export csv", f"/api/backtests/{backtest_id}/export?format=csv"),
        ("backtest export json", f"/api/backtests/{backtest_id}/export?format=json"),
        ("bot chart API", f"/api/bots/{bot_id}/chart"),
        ("bot equity API", f"/api/bots/{bot_id}/equity"),
        ("performance API", "/api/performance?period=day"),
    ]
    for _, path in pages:  # warm caches and the market catalogue once
        client.get(path)
    print(f"{args.repeat} GETs each, SQLite, in-process test client; the bot has "
          f"{args.trades}+ fills, the optimisation {args.trials} trials")  # fmt: skip
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
