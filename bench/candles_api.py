"""Benchmark: the 200-candle chart API under concurrent load, on SQLite and on PostgreSQL.

For each database it starts a real daphne server (the stack's web process) on a throwaway
database loaded with the shipped BTC/USDT sample, logs in through the API, and runs
``--clients`` concurrent HTTP clients for ``--seconds``. Each client keeps its own keep-alive
connection. It measures requests a second and p50/p99 latency of

- ``GET /api/candles?...&limit=200`` (the chart's request), and
- ``GET /healthz`` (the peer: one trivial query, same server, same run),

and prints the ratio between them, because the machine is noisy and only ratios compare.

    .venv/bin/python bench/candles_api.py [--seconds 10] [--clients 8]
    .venv/bin/python bench/candles_api.py --url http://127.0.0.1:8000 --password ...

PostgreSQL is taken from ``--postgres`` (default
``postgres://postgres@127.0.0.1:5432/tradingbot_bench``, created if missing); it is skipped, with
a note, when unreachable.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CANDLES = "/api/candles?exchange=bitget&symbol=BTC/USDT&timeframe=5m&limit=200"


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    reasons: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return done.stdout


def demo_password(seed_output: str) -> str:
    for line in seed_output.splitlines():
        if "Demo trader:" in line:
            return line.rsplit("/", 1)[1].strip()
    raise RuntimeError(f"no demo login in seed output:\n{seed_output}")


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "--access-log", os.devnull,
         "tradingbot.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status, _ = request("127.0.0.1", port, "GET", "/healthz")
            if status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("daphne did not come up")


def request(
    host: str, port: int, method: str, path: str, body: dict | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection(host, port, timeout=30)
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(
        method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def login(host: str, port: int, email: str, password: str) -> str:
    status, data = request(
        host, port, "POST", "/api/auth/login", {"email": email, "password": password}
    )
    if status != 200:
        raise RuntimeError(f"login failed: {status} {data[:200]!r}")
    return str(json.loads(data)["token"])


def load(host: str, port: int, path: str, token: str, clients: int, seconds: float) -> Result:
    result = Result()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        headers = {"Authorization": f"Token {token}"}
        latencies, errors, reasons = [], 0, []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                ok = response.status == 200 and bool(body)
                if not ok:
                    reasons.append(f"HTTP {response.status}: {body[:120]!r}")
            except (OSError, http.client.HTTPException) as error:
                ok = False
                reasons.append(type(error).__name__)
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
        conn.close()
        with lock:
            result.latencies.extend(latencies)
            result.errors += errors
            result.reasons.extend(reasons)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def measure(label: str, host: str, port: int, token: str, args: argparse.Namespace) -> list[tuple]:
    status, data = request(host, port, "GET", CANDLES, headers={"Authorization": f"Token {token}"})
    count = len(json.loads(data)["candles"]) if status == 200 else 0
    if count != 200:
        raise RuntimeError(f"{label}: the chart API gave {status} with {count} candles")
    rows = []
    for name, path in (("healthz (peer)", "/healthz"), ("candles limit=200", CANDLES)):
        load(host, port, path, token, args.clients, 1.0)  # warm-up
        result = load(host, port, path, token, args.clients, args.seconds)
        rows.append((label, name, result))
    return rows


def postgres_ready(url: str) -> bool:
    import psycopg

    parts = urllib.parse.urlsplit(url)
    admin = parts._replace(path="/postgres").geturl()
    name = parts.path.lstrip("/")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return True
    except psycopg.Error:
        return False


def run_self_hosted(args: argparse.Namespace) -> list[tuple]:
    rows: list[tuple] = []
    targets = [("SQLite", None)]
    if postgres_ready(args.postgres):
        targets.append(("PostgreSQL", args.postgres))
    else:
        print(f"note: PostgreSQL at {args.postgres} unreachable; measuring SQLite only")
    for label, database_url in targets:
        with tempfile.TemporaryDirectory(prefix="tb-bench-") as var_dir:
            env = {**os.environ, "TRADINGBOT_VAR_DIR": var_dir, "LOG_LEVEL": "WARNING",
                   "DEBUG": "true", "ALLOWED_HOSTS": "127.0.0.1,localhost"}  # fmt: skip
            env.pop("DATABASE_URL", None)
            if database_url:
                env["DATABASE_URL"] = database_url
            redis_server = None
            if not env.get("REDIS_URL"):
                redis_server = subprocess.Popen(
                    [PYTHON, "-m", "tradingbot.embedded_redis", "serve"], cwd=ROOT, env=env,
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
            try:
                manage(env, "migrate", "--no-input")
                password = demo_password(manage(env, "seed_demo"))
                port = free_port()
                server = start_server(env, port)
                try:
                    token = login("127.0.0.1", port, "demo@example.com", password)
                    rows += measure(label, "127.0.0.1", port, token, args)
                finally:
                    server.terminate()
                    server.wait(timeout=20)
            finally:
                if redis_server is not None:
                    redis_server.terminate()
                    redis_server.wait(timeout=10)
    return rows


def print_table(rows: list[tuple], args: argparse.Namespace) -> None:
    print(f"\n{args.clients} concurrent clients, {args.seconds:.0f} s per row, one daphne process")
    header = ("database", "request", "req/s", "p50 ms", "p99 ms", "errors", "req/s vs peer")
    print("{:11} {:20} {:>8} {:>8} {:>8} {:>7} {:>14}".format(*header))
    peers: dict[str, float] = {}
    for label, name, result in rows:
        rate = len(result.latencies) / args.seconds
        lat = sorted(result.latencies) or [float("nan")]
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        if name.endswith("(peer)"):
            peers[label] = rate
        ratio = rate / peers[label] if peers.get(label) else float("nan")
        cells = f"{rate:8.1f} {p50:8.2f} {p99:8.2f} {result.errors:7d} {ratio:14.2f}"
        print(f"{label:11} {name:20} {cells}")
        for reason, count in Counter(result.reasons).most_common(3):
            print(f"{'':32} error ×{count}: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/tradingbot_bench")
    parser.add_argument("--url", help="measure an already running stack instead")
    parser.add_argument("--email", default="demo@example.com")
    parser.add_argument("--password")
    args = parser.parse_args()
    if args.url:
        parts = urllib.parse.urlsplit(args.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        token = login(host, port, args.email, args.password)
        rows = measure("running", host, port, token, args)
    else:
        rows = run_self_hosted(args)
    print_table(rows, args)


if __name__ == "__main__":
    main()
