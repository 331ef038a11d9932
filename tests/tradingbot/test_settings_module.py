"""The settings module as a whole, loaded by ``django.setup()`` in a fresh process.

Each test starts from an environment without any of the project's variables, so that what the
developer's shell (or the PostgreSQL test mode) exports does not leak in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.process  # starts processes of its own

PROJECT_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "CELERY_TASK_SOFT_TIME_LIMIT",
    "CELERY_TASK_TIME_LIMIT",
    "API_TOKEN_TTL_HOURS",
    "LOGIN_MAX_FAILURES",
    "LOGIN_FAILURE_WINDOW",
    "HTTPS",
    "HSTS_SECONDS",
    "HSTS_INCLUDE_SUBDOMAINS",
    "HSTS_PRELOAD",
    "TRUSTED_PROXIES",
)
PRINT_SETTINGS = """
import json
import django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY,
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "USER": db.get("USER"),
    "PASSWORD": db.get("PASSWORD"),
    "HOST": db.get("HOST"),
    "PORT": db.get("PORT"),
    "OPTIONS": db.get("OPTIONS"),
    "REDIS_URL": settings.REDIS_URL,
    "EMBEDDED_REDIS": settings.EMBEDDED_REDIS,
    "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "TRUSTED_PROXIES": settings.TRUSTED_PROXIES,
    "LOG_LEVEL": settings.LOG_LEVEL,
    "LOG_FORMAT": settings.LOG_FORMAT,
}))
"""


def load_settings(var_dir: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_VARIABLES}
    env.update(
        DJANGO_SETTINGS_MODULE="tradingbot.settings", TRADINGBOT_VAR_DIR=str(var_dir), **variables
    )
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The message of the ImproperlyConfigured that stopped the process."""
    assert result.returncode != 0, result.stdout
    prefix = "django.core.exceptions.ImproperlyConfigured: "
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(prefix), result.stderr
    return last.removeprefix(prefix)


def loaded(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_it_refuses_to_start_with_a_malformed_debug(tmp_path, value):
    result = load_settings(tmp_path, DEBUG=value)
    assert refusal(result).startswith(
        f"DEBUG must be one of true/false/1/0/yes/no/on/off, got '{value}'"
    )


def test_it_starts_with_debug_off_and_plain_http_cookies_when_nothing_is_set(tmp_path):
    # when: a fresh machine, no variable at all (what `make run` does)
    values = loaded(load_settings(tmp_path))
    # then: production mode, and the session cookie still travels over plain http
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["TRUSTED_PROXIES"] == []


def test_it_turns_on_secure_cookies_hsts_and_the_redirect_with_https(tmp_path):
    values = loaded(load_settings(tmp_path, HTTPS="true", TRUSTED_PROXIES="10.0.0.0/8"))
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31_536_000
    assert values["TRUSTED_PROXIES"] == ["10.0.0.0/8"]


def test_it_starts_with_both_secrets_from_the_environment_and_generates_no_files(tmp_path):
    # when
    result = load_settings(
        tmp_path, DEBUG="off", SECRET_KEY="s" * 50, FIELD_ENCRYPTION_KEY="f" * 44
    )
    # then
    values = loaded(result)
    assert values["DEBUG"] is False
    assert values["SECRET_KEY"] == "s" * 50
    assert values["FIELD_ENCRYPTION_KEY"] == "f" * 44
    assert not (tmp_path / "secret_key").exists()
    assert not (tmp_path / "field_encryption_key").exists()


@pytest.mark.parametrize("debug", [None, "true"])
def test_it_generates_keys_once_and_reuses_them_on_the_next_start(tmp_path, debug):
    # when: two start-ups on the same var dir, in production (the default) or debug mode
    variables = {"DEBUG": debug} if debug else {}
    first = loaded(load_settings(tmp_path, **variables))
    second = loaded(load_settings(tmp_path, **variables))
    # then
    assert first["DEBUG"] is bool(debug)
    assert first["SECRET_KEY"] == second["SECRET_KEY"] == (tmp_path / "secret_key").read_text()
    assert first["FIELD_ENCRYPTION_KEY"] == second["FIELD_ENCRYPTION_KEY"]
    from cryptography.fernet import Fernet

    Fernet(first["FIELD_ENCRYPTION_KEY"])  # a usable Fernet key, not just any random string


def test_it_defaults_to_sqlite_and_the_embedded_redis_in_the_var_dir(tmp_path):
    values = loaded(load_settings(tmp_path))
    var_dir = tmp_path.resolve()
    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert values["NAME"] == str(var_dir / "db.sqlite3")
    assert values["EMBEDDED_REDIS"] is True
    assert values["REDIS_URL"] == f"unix://{var_dir / 'redis.sock'}"
    assert values["CELERY_BROKER_URL"] == f"redis+socket://{var_dir / 'redis.sock'}"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_URL", "mysql://trader:pw@127.0.0.1:3306/trading"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("ALLOWED_HOSTS", "example.com,,other.example.com"),
        ("LOGIN_MAX_FAILURES", "0"),
        ("CELERY_TASK_TIME_LIMIT", "6m"),
        ("HTTPS", "tls"),
        ("TRUSTED_PROXIES", "proxy.internal"),
    ],
)
def test_it_refuses_to_start_with_a_bad_value_naming_the_variable(tmp_path, variable, value):
    result = load_settings(tmp_path, **{variable: value})
    assert refusal(result).startswith(variable)


def test_it_uses_postgresql_for_a_postgres_database_url(tmp_path):
    # when
    result = load_settings(
        tmp_path, DATABASE_URL="postgres://trader:s%40cret@db.internal:5433/trading?sslmode=require"
    )
    # then: setup does not connect, it only configures
    values = loaded(result)
    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert (values["NAME"], values["USER"], values["PASSWORD"]) == ("trading", "trader", "s@cret")
    assert (values["HOST"], values["PORT"]) == ("db.internal", "5433")
    assert values["OPTIONS"] == {"sslmode": "require"}


def test_it_uses_a_given_redis_url_for_the_broker_and_does_not_embed(tmp_path):
    values = loaded(load_settings(tmp_path, REDIS_URL="redis://cache.internal:6379/3"))
    assert values["EMBEDDED_REDIS"] is False
    assert values["REDIS_URL"] == values["CELERY_BROKER_URL"] == "redis://cache.internal:6379/3"


def test_it_normalises_log_settings(tmp_path):
    values = loaded(load_settings(tmp_path, LOG_LEVEL="warning", LOG_FORMAT="JSON"))
    assert (values["LOG_LEVEL"], values["LOG_FORMAT"]) == ("WARNING", "json")
