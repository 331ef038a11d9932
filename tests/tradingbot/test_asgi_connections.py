"""Under daphne, database connections must not outlive their request: persistent connections in
ASGI leak one per executor thread until PostgreSQL refuses clients (seen in bench/candles_api.py).
"""

from __future__ import annotations

import http.client
import os
import threading
from collections import Counter

import pytest

from tests.conftest import server_env
from tests.daphne_process import daphne_running

pytestmark = pytest.mark.process  # starts processes of its own

NO_ACCESS_LOG = ("--access-log", os.devnull)


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
