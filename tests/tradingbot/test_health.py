"""``GET /healthz``: 200 when the database and Redis answer, 503 naming the part that does not."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from tests.conftest import ROOT
from tradingbot.redis import get_redis

HEALTHZ = "/healthz"
REAL_REDIS_URL = django_settings.REDIS_URL


@pytest.fixture
def redis_down(settings, tmp_path):
    """Point the process's Redis client at a socket nobody serves; restore it afterwards."""
    get_redis.cache_clear()
    settings.REDIS_URL = f"unix://{tmp_path / 'nobody-listens.sock'}"
    yield
    get_redis.cache_clear()


@pytest.mark.django_db
def test_it_reports_ok_when_database_and_redis_answer(client):
    # when
    response = client.get(HEALTHZ)
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_it_only_answers_safe_methods(client, method):
    assert getattr(client, method)(HEALTHZ).status_code == 405
    assert client.head(HEALTHZ).status_code == 200


@pytest.mark.django_db
@pytest.mark.usefixtures("redis_down")
def test_it_reports_503_naming_redis_when_redis_is_down(client, caplog):
    # when
    with caplog.at_level(logging.INFO):
        response = client.get(HEALTHZ)
    # then
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "ok", "redis": "unavailable"}
    [warning] = [r for r in caplog.records if r.getMessage() == "health.degraded"]
    assert warning.levelno == logging.WARNING
    assert warning.failing == "redis"


DATABASE_DOWN = """
import json
import django
django.setup()
from django.test import RequestFactory
from tradingbot.health import healthz
response = healthz(RequestFactory().get("/healthz"))
print(json.dumps({"status": response.status_code, "body": json.loads(response.content)}))
"""


@pytest.mark.process
def test_it_reports_503_naming_the_database_when_the_database_is_down(tmp_path):
    # given: a PostgreSQL address where nothing listens, and the Redis of this test session
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingbot.settings",
        "TRADINGBOT_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nope",
        "REDIS_URL": django_settings.REDIS_URL,
        "LOG_FORMAT": "json",
    }
    # when
    result = subprocess.run(
        [sys.executable, "-c", DATABASE_DOWN],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # then
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1] == {
        "status": 503,
        "body": {"status": "error", "database": "unavailable", "redis": "ok"},
    }
    warnings = [line for line in lines[:-1] if line.get("message") == "health.degraded"]
    assert [(w["level"], w["failing"]) for w in warnings] == [("WARNING", "database")]


@pytest.mark.django_db
def test_it_logs_a_failure_once_not_on_every_probe(client, settings, caplog):
    from tradingbot.redis import get_redis

    # given: a healthy process (one probe), then Redis becomes unreachable
    assert client.get(HEALTHZ).status_code == 200
    caplog.clear()
    settings.REDIS_URL = "unix:///nonexistent/redis.sock"
    get_redis.cache_clear()
    try:
        # when: a load balancer probes five times, then Redis comes back
        with caplog.at_level(logging.INFO):
            statuses = [client.get(HEALTHZ).status_code for _ in range(5)]
            settings.REDIS_URL = REAL_REDIS_URL
            get_redis.cache_clear()
            statuses.append(client.get(HEALTHZ).status_code)
    finally:
        get_redis.cache_clear()
    # then: one warning for the outage, one line for the recovery, nothing from django.request
    assert statuses == [503] * 5 + [200]
    messages = [
        r.getMessage() for r in caplog.records if r.name.startswith(("tradingbot", "django"))
    ]
    assert messages.count("health.degraded") == 1
    assert messages.count("health.recovered") == 1
    assert not [r for r in caplog.records if r.name == "django.request"]
