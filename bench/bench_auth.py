"""Benchmark: the cost of authentication and secret decryption on the API's hot paths.

Runs in-process through Django's test client against a throwaway SQLite database (and the
configured Redis, embedded if REDIS_URL is unset), so it needs no server. Every row is compared
with the peer `/healthz` measured in the same run: the machine is noisy, ratios are what count.

    .venv/bin/python bench/bench_auth.py [--requests 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(var_dir: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")
    os.environ["TRADINGBOT_VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


def timed(fn: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tb-bench-") as var_dir:
        setup_django(var_dir)
        run(args.requests, Path(var_dir))


def run(n: int, var_dir: Path) -> None:
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from accounts.models import User
    from accounts.services import api_token_issue
    from markets.models import ExchangeAccount
    from tradingbot import embedded_redis

    server = None
    if settings.EMBEDDED_REDIS:
        server = embedded_redis.start_background(var_dir / "redis.sock")
    try:
        call_command("migrate", verbosity=0)
        user = User.objects.create_user("bench@example.com", "bench-password-1")
        for i in range(20):
            ExchangeAccount.objects.create(
                user=user, exchange="bitget", label=f"acct {i}", mode="live",
                api_key=f"key-{i:08d}", api_secret=f"secret-{i:08d}", passphrase="pass",
            )  # fmt: skip
        token = api_token_issue(user=user).key
        host = {"HTTP_HOST": "localhost"}
        token_client = Client(HTTP_AUTHORIZATION=f"Token {token}", **host)
        session_client = Client(**host)
        session_client.force_login(user)
        anonymous = Client(**host)

        cases: list[tuple[str, Callable[[], object]]] = [
            ("GET /healthz (peer)", lambda: anonymous.get("/healthz")),
            ("GET /api/auth/me, token", lambda: token_client.get("/api/auth/me")),
            ("GET /api/auth/me, session", lambda: session_client.get("/api/auth/me")),
            (
                "GET /api/exchange-accounts (20 rows, 60 decrypts), token",
                lambda: token_client.get("/api/exchange-accounts"),
            ),
        ]
        for name, fn in cases:  # warm up caches, connections and imports; check it works
            response = fn()
            assert response.status_code == 200, (name, response.status_code)  # type: ignore[attr-defined]
            timed(fn, 20)
        results = [(name, timed(fn, n)) for name, fn in cases]
    finally:
        if server is not None:
            server.terminate()
    print_table(results, n)


def print_table(results: list[tuple[str, list[float]]], n: int) -> None:
    peer = statistics.median(results[0][1])
    print(f"{n} requests each, in-process test client, SQLite + Redis")
    print(f"{'case':58} {'median ms':>10} {'p95 ms':>8} {'× peer':>7}")
    for name, samples in results:
        median = statistics.median(samples)
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"{name:58} {median * 1e3:10.3f} {p95 * 1e3:8.3f} {median / peer:7.2f}")


if __name__ == "__main__":
    main()
