"""The environment readers: good values parse, bad values stop start-up naming the variable."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradingbot import env

SQLITE = Path("/srv/tradingbot/var/db.sqlite3")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# --- env.env_bool ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "Yes", "on", " true "])
def test_it_reads_true_spellings_as_true(raw):
    assert env.env_bool({"DEBUG": raw}, "DEBUG", default=False) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "NO", "off", " off "])
def test_it_reads_false_spellings_as_false(raw):
    assert env.env_bool({"DEBUG": raw}, "DEBUG", default=True) is False


@pytest.mark.parametrize("environ", [{}, {"DEBUG": ""}])
def test_it_uses_the_bool_default_when_unset_or_empty(environ):
    assert env.env_bool(environ, "DEBUG", default=True) is True
    assert env.env_bool(environ, "DEBUG", default=False) is False


@pytest.mark.parametrize("raw", ["maybe", "2", "truee", "y"])
def test_it_refuses_an_unknown_bool_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^DEBUG must be one of .*got") as error:
        env.env_bool({"DEBUG": raw}, "DEBUG", default=False)
    assert repr(raw) in str(error.value)


# --- env.env_int ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("42", 42), (" 7 ", 7), ("-3", -3), ("0", 0)])
def test_it_reads_integers(raw, expected):
    assert env.env_int({"N": raw}, "N", 5) == expected


@pytest.mark.parametrize("environ", [{}, {"N": ""}])
def test_it_uses_the_int_default_when_unset_or_empty(environ):
    assert env.env_int(environ, "N", 5, minimum=1) == 5


@pytest.mark.parametrize("raw", ["12x", "1.5", "ten", "0x10"])
def test_it_refuses_a_non_integer_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^LOGIN_MAX_FAILURES must be an integer"):
        env.env_int({"LOGIN_MAX_FAILURES": raw}, "LOGIN_MAX_FAILURES", 5, minimum=1)


@pytest.mark.parametrize("raw", ["0", "-1"])
def test_it_refuses_an_integer_below_the_minimum_naming_the_variable(raw):
    with pytest.raises(
        ImproperlyConfigured, match=rf"^LOGIN_FAILURE_WINDOW must be at least 1, got {raw}$"
    ):
        env.env_int({"LOGIN_FAILURE_WINDOW": raw}, "LOGIN_FAILURE_WINDOW", 60, minimum=1)


def test_it_accepts_an_integer_equal_to_the_minimum():
    assert env.env_int({"N": "1"}, "N", 60, minimum=1) == 1


# --- env.env_choice -------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("debug", "DEBUG"), (" Warning ", "WARNING")])
def test_it_normalises_an_upper_case_choice(raw, expected):
    assert env.env_choice({"LOG_LEVEL": raw}, "LOG_LEVEL", "INFO", LEVELS) == expected


@pytest.mark.parametrize(("raw", "expected"), [("JSON", "json"), ("text", "text")])
def test_it_normalises_a_lower_case_choice(raw, expected):
    assert env.env_choice({"LOG_FORMAT": raw}, "LOG_FORMAT", "text", ("text", "json")) == expected


def test_it_uses_the_choice_default_when_unset():
    assert env.env_choice({}, "LOG_FORMAT", "text", ("text", "json")) == "text"


@pytest.mark.parametrize(
    ("name", "raw", "choices"),
    [("LOG_FORMAT", "xml", ("text", "json")), ("LOG_LEVEL", "verbose", LEVELS)],
)
def test_it_refuses_an_unknown_choice_naming_the_variable_and_the_choices(name, raw, choices):
    with pytest.raises(ImproperlyConfigured, match=rf"^{name} must be one of") as error:
        env.env_choice({name: raw}, name, choices[0], choices)
    assert ", ".join(choices) in str(error.value)
    assert repr(raw) in str(error.value)


# --- env.env_list ---------------------------------------------------------------------------------


def test_it_splits_a_list_and_strips_the_items():
    environ = {"ALLOWED_HOSTS": "example.com, api.example.com ,localhost"}
    assert env.env_list(environ, "ALLOWED_HOSTS", []) == [
        "example.com",
        "api.example.com",
        "localhost",
    ]


@pytest.mark.parametrize("environ", [{}, {"ALLOWED_HOSTS": ""}, {"ALLOWED_HOSTS": "   "}])
def test_it_uses_a_copy_of_the_list_default_when_unset_or_blank(environ):
    default = ["localhost"]
    result = env.env_list(environ, "ALLOWED_HOSTS", default)
    assert result == ["localhost"]
    result.append("mutated")
    assert default == ["localhost"]


@pytest.mark.parametrize("raw", ["a.example,,b.example", "a.example,", ",a.example", "a, ,b"])
def test_it_refuses_a_list_with_an_empty_item_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^ALLOWED_HOSTS has an empty item"):
        env.env_list({"ALLOWED_HOSTS": raw}, "ALLOWED_HOSTS", [])


# --- env.database_from_url ------------------------------------------------------------------------


def test_it_reads_every_part_of_a_postgres_url():
    # given: a password with characters that must be url-escaped and a database name with a space
    url = (
        "postgres://trader:p%40ss%3Aw%2Frd%25@DB.example.com:6543/trading%20db"
        "?sslmode=require&connect_timeout=5"
    )
    # when
    config = env.database_from_url(url, sqlite_path=SQLITE)
    # then
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["USER"] == "trader"
    assert config["PASSWORD"] == "p@ss:w/rd%"
    assert config["HOST"] == "db.example.com"
    assert config["PORT"] == "6543"
    assert config["NAME"] == "trading db"
    assert config["OPTIONS"] == {"sslmode": "require", "connect_timeout": "5"}


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "pgsql"])
def test_it_accepts_every_postgres_scheme_spelling(scheme):
    config = env.database_from_url(f"{scheme}://u@h/db", sqlite_path=SQLITE)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"]) == (
        "u",
        "",
        "h",
        "",
    )
    assert config["OPTIONS"] == {}


@pytest.mark.parametrize("url", [None, ""])
def test_it_uses_sqlite_in_the_var_dir_without_a_url(url):
    config = env.database_from_url(url, sqlite_path=SQLITE)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(SQLITE)
    assert config["TEST"]["NAME"] == str(SQLITE.with_name("test_db.sqlite3"))


def test_it_reads_an_absolute_sqlite_path():
    config = env.database_from_url("sqlite:////data/trading/bots.db", sqlite_path=SQLITE)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "/data/trading/bots.db"
    assert config["TEST"]["NAME"] == "/data/trading/test_bots.db"


def test_it_reads_a_relative_sqlite_path():
    config = env.database_from_url("sqlite:///var/bots.db", sqlite_path=SQLITE)
    assert config["NAME"] == "var/bots.db"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///"])
def test_it_refuses_a_sqlite_url_without_a_path(url):
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL sqlite:// needs a file path"):
        env.database_from_url(url, sqlite_path=SQLITE)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("mysql://u:p@h:3306/db", "mysql"), ("http://h/db", "http"), ("db.sqlite3", "")],
)
def test_it_refuses_an_unsupported_scheme_naming_database_url(url, scheme):
    with pytest.raises(
        ImproperlyConfigured, match=rf"^DATABASE_URL scheme {scheme!r} is not supported"
    ):
        env.database_from_url(url, sqlite_path=SQLITE)


@pytest.mark.parametrize("url", ["postgres://u@h:5432/", "postgres://u@h:5432", "postgres://u@h"])
def test_it_refuses_a_postgres_url_without_a_database_name(url):
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL must name a database"):
        env.database_from_url(url, sqlite_path=SQLITE)


@pytest.mark.parametrize("port", ["99999", "abc", "-1"])
def test_it_refuses_a_postgres_url_with_an_invalid_port(port):
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL has an invalid port$"):
        env.database_from_url(f"postgres://u@h:{port}/db", sqlite_path=SQLITE)


# --- Redis and Celery broker ------------------------------------------------------------------


@pytest.mark.parametrize("url", [None, ""])
def test_it_points_at_the_embedded_redis_socket_without_a_url(url, tmp_path):
    socket_path = tmp_path / "redis.sock"
    assert env.redis_url_or_embedded(url, socket_path=socket_path) == f"unix://{socket_path}"


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/5", "rediss://:pw@cache.example.com:6380/0", "unix:///r.sock"]
)
def test_it_keeps_a_supported_redis_url(url, tmp_path):
    assert env.redis_url_or_embedded(url, socket_path=tmp_path / "redis.sock") == url


@pytest.mark.parametrize(("url", "scheme"), [("http://h:6379", "http"), ("127.0.0.1:6379", "")])
def test_it_refuses_an_unsupported_redis_scheme_naming_redis_url(url, scheme, tmp_path):
    with pytest.raises(
        ImproperlyConfigured, match=rf"^REDIS_URL scheme {scheme!r} is not supported"
    ):
        env.redis_url_or_embedded(url, socket_path=tmp_path / "redis.sock")


def test_it_spells_a_unix_socket_broker_the_kombu_way():
    assert (
        env.celery_broker_url("unix:///srv/var/redis.sock") == "redis+socket:///srv/var/redis.sock"
    )


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/5", "rediss://h:6380/0"])
def test_it_keeps_a_tcp_redis_url_as_the_broker(url):
    assert env.celery_broker_url(url) == url


# --- env.secret_from_env_or_file ------------------------------------------------------------------


def _never() -> str:
    raise AssertionError("a secret was generated although one was available")


def test_it_takes_the_secret_from_the_environment_over_the_file(tmp_path):
    # given: a stored secret too
    path = tmp_path / "secret_key"
    path.write_text("stored")
    # when
    value = env.secret_from_env_or_file(
        {"SECRET_KEY": " from-env "}, "SECRET_KEY", path=path, generate=_never
    )
    # then
    assert value == "from-env"
    assert path.read_text() == "stored"


@pytest.mark.parametrize("environ", [{}, {"SECRET_KEY": ""}, {"SECRET_KEY": "   "}])
def test_it_reads_a_stored_secret_when_the_variable_is_unset_or_blank(tmp_path, environ):
    # given
    path = tmp_path / "secret_key"
    path.write_text("stored\n")
    # when / then
    assert env.secret_from_env_or_file(environ, "SECRET_KEY", path=path, generate=_never) == (
        "stored"
    )


def test_it_generates_a_secret_once_into_a_private_file_and_reuses_it(tmp_path):
    # given
    path = tmp_path / "nested" / "field_encryption_key"
    generated = iter(["first-generated", "second-generated"])
    # when
    first = env.secret_from_env_or_file(
        {}, "FIELD_ENCRYPTION_KEY", path=path, generate=lambda: next(generated)
    )
    second = env.secret_from_env_or_file(
        {}, "FIELD_ENCRYPTION_KEY", path=path, generate=lambda: next(generated)
    )
    # then
    assert first == second == "first-generated"
    assert path.read_text() == "first-generated"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_process_that_loses_the_race_to_write_the_secret_uses_the_winners(tmp_path):
    # given: another process writes its key while this one generates its own (make run starts
    # daphne and the workers at once on a fresh machine)
    path = tmp_path / "field_encryption_key"

    def generate_while_another_process_stores_its_key() -> str:
        path.write_text("the-other-process-key")
        return "this-process-key"

    # when
    value = env.secret_from_env_or_file(
        {},
        "FIELD_ENCRYPTION_KEY",
        path=path,
        generate=generate_while_another_process_stores_its_key,
    )
    # then: both use the stored one, and no draft is left behind
    assert value == "the-other-process-key"
    assert path.read_text() == "the-other-process-key"
    assert [p.name for p in tmp_path.iterdir()] == ["field_encryption_key"]


def test_an_empty_secret_file_left_by_a_crash_is_replaced(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("")
    assert env.secret_from_env_or_file({}, "SECRET_KEY", path=path, generate=lambda: "new") == "new"
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_it_generates_a_long_random_secret_by_default(tmp_path):
    one = env.secret_from_env_or_file({}, "SECRET_KEY", path=tmp_path / "a")
    other = env.secret_from_env_or_file({}, "SECRET_KEY", path=tmp_path / "b")
    assert len(one) >= 50
    assert one != other


def test_it_regenerates_a_secret_when_the_file_is_empty(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("\n")
    value = env.secret_from_env_or_file({}, "SECRET_KEY", path=path, generate=lambda: "s")
    assert value == "s"
    assert path.read_text() == "s"


# --- env.env_networks -------------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"TRUSTED_PROXIES": ""}, {"TRUSTED_PROXIES": "  "}])
def test_it_trusts_no_proxy_by_default(environ):
    assert env.env_networks(environ, "TRUSTED_PROXIES") == []


def test_it_reads_addresses_and_networks_normalised():
    environ = {"TRUSTED_PROXIES": "10.0.0.7, 172.16.0.0/12,10.1.2.3/8, ::1"}
    assert env.env_networks(environ, "TRUSTED_PROXIES") == [
        "10.0.0.7/32",
        "172.16.0.0/12",
        "10.0.0.0/8",
        "::1/128",
    ]


@pytest.mark.parametrize("raw", ["proxy.internal", "10.0.0.0/33", "10.0.0.1,,10.0.0.2"])
def test_it_refuses_a_trusted_proxy_that_is_no_address_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match=r"^TRUSTED_PROXIES "):
        env.env_networks({"TRUSTED_PROXIES": raw}, "TRUSTED_PROXIES")
