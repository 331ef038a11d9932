"""Under daphne, database connections must not outlive their request: persistent connections in
ASGI leak one per executor thread until PostgreSQL refuses clients (seen in bench/candles_api.py).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from tests.conftest import ROOT, database_url
from tests.stack_helpers import free_port

pytestmark = pytest.mark.process  # starts processes of its own


def _serve(env):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "--access-log", os.devnull, "tradingbot.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("daphne did not start")


def _hammer(port, clients=8, requests=150):
    statuses = Counter()
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(requests):
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            with lock:
                statuses[response.status] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.django_db
def test_concurrent_requests_never_exhaust_database_connections():
    from django.db import connection

    # given: a real daphne on the test database
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict)}
    process, port = _serve(env)
    try:
        # when: 8 clients send 1,200 requests that each use the database
        statuses = _hammer(port)
        # then: every one is served, and no connection is left open after the burst
        assert statuses == Counter({200: 1200})
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()",
                    [connection.settings_dict["NAME"]],
                )
                assert cursor.fetchone()[0] <= 1
    finally:
        process.terminate()
        process.wait(timeout=20)
