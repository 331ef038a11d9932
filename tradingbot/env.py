"""Strict, typed readers for the environment.

Every reader takes the environment mapping explicitly so that the parsing can be tested without
touching ``os.environ``. A value that is present but malformed raises ``ImproperlyConfigured``
naming the variable: a typo in production must stop start-up, never fall back silently.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

Environ = Mapping[str, str]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(environ: Environ, name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")


def env_int(environ: Environ, name: str, default: int, *, minimum: int | None = None) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_choice(environ: Environ, name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip()
    normalised = value.upper() if all(c.isupper() for c in choices) else value.lower()
    if normalised not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return normalised


def env_list(environ: Environ, name: str, default: list[str]) -> list[str]:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    items = [item.strip() for item in raw.split(",")]
    if any(item == "" for item in items):
        raise ImproperlyConfigured(f"{name} has an empty item in {raw!r}")
    return items


def database_from_url(url: str | None, *, sqlite_path: Path) -> dict[str, Any]:
    """Django DATABASES['default'] for a URL; ``None`` or empty means SQLite at ``sqlite_path``."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(sqlite_path),
            # Workers and daphne write concurrently: wait for the lock instead of failing.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                # WAL lets daphne read while a worker writes.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not memory: worker and server processes started by tests must share it.
            "TEST": {"NAME": str(sqlite_path.with_name(f"test_{sqlite_path.name}"))},
        }
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        return _postgres_from_parts(url, parts)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.db (four slashes) or sqlite:///relative.db
        path = unquote(parts.path[1:] if parts.path.startswith("//") else parts.path.lstrip("/"))
        if not path:
            raise ImproperlyConfigured("DATABASE_URL sqlite:// needs a file path")
        return database_from_url(None, sqlite_path=Path(path))
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parts.scheme!r} is not supported; use postgres:// or sqlite://"
    )


def _postgres_from_parts(url: str, parts: Any) -> dict[str, Any]:
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL must name a database, e.g. postgres://u@h:5432/db")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("DATABASE_URL has an invalid port") from None
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }


def redis_url_or_embedded(url: str | None, *, socket_path: Path) -> str:
    """The Redis URL to use: the given one, validated, or the embedded server's unix socket."""
    if not url:
        return f"unix://{socket_path}"
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(
            f"REDIS_URL scheme {scheme!r} is not supported; use redis://, rediss:// or unix://"
        )
    return url


def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a unix-socket Redis transport ``redis+socket://``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


def secret_from_env_or_file(
    environ: Environ, name: str, *, path: Path, generate: Any = None
) -> str:
    """A secret from the environment, or else generated once into ``path`` and reused.

    Generating is what lets ``make run`` start on a fresh machine with nothing configured, in
    DEBUG or not. The file is the key: keep it (losing FIELD_ENCRYPTION_KEY makes stored exchange
    secrets unreadable), and set the variable on every machine of a multi-machine setup, where
    each machine would otherwise generate a key of its own.
    """
    value = environ.get(name, "").strip()
    if value:
        return value
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return stored
    make = generate or (lambda: secrets.token_urlsafe(50))
    return _store_once(path, make())


def _store_once(path: Path, new_value: str) -> str:
    """Write ``new_value`` to ``path`` unless another process got there first; return what
    ``path`` holds. ``make run`` starts daphne and the workers at once on a fresh machine: a
    process that kept a key of its own while another's landed in the file could not read what
    the others encrypt. The value is written whole to a private file, then linked into place,
    which fails if the path exists: a reader never sees half a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    # Created 0600 from the first byte: never readable by others, not even briefly.
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(new_value)
        os.link(draft, path)
    except FileExistsError:
        stored = path.read_text().strip()
        if stored:
            return stored
        os.replace(draft, path)  # an empty file, left by a crash: the new value takes its place
    finally:
        draft.unlink(missing_ok=True)
    return new_value


def env_networks(environ: Environ, name: str) -> list[str]:
    """Comma-separated IP addresses or CIDR networks (``10.0.0.0/8``), each checked; unset or
    empty means none. Returned as written (normalised), so that settings stay printable."""
    networks = []
    for item in env_list(environ, name, default=[]):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be IP addresses or networks (10.0.0.1, 10.0.0.0/8), got {item!r}"
            ) from None
    return networks
