"""Under daphne, database connections must not outlive their request: persistent connections in
ASGI leak one per executor thread until PostgreSQL refuses clients (seen in bench/candles_api.py).
"""

from __future__ import annotations

import http.client
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import server_env
from tests.daphne_process import daphne_running

pytestmark = pytest.mark.process  # starts processes of its own

NO_ACCESS_LOG = ("--access-log", os.devnull)


def _hammer(port, clients=8, requests=150):
    """The statuses of ``clients`` threads sending ``requests`` each on one connection apiece."""

    def client():
        statuses = Counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(requests):
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            statuses[response.status] += 1
        return statuses

    with ThreadPoolExecutor(max_workers=clients) as pool:
        running = [pool.submit(client) for _ in range(clients)]
        return sum((done.result() for done in running), Counter())


@pytest.mark.django_db
def test_concurrent_requests_never_exhaust_database_connections(tmp_path):
    from django.db import connection

    # given: a real daphne on the test database
    log_path = tmp_path / "daphne.log"
    with daphne_running(env=server_env(), log_path=log_path, options=NO_ACCESS_LOG) as server:
        # when: 8 clients send 1,200 requests that each use the database
        statuses = _hammer(server.port)
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
