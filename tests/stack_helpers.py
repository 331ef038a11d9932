"""Drive a real ``make run`` from a test: start it, talk HTTP to it, Ctrl-C it, find leftovers.

Standard library only, so that the stack tests need nothing from the code they start.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# What tradingbot.supervisor prefixes to every line of its processes: "07:35:50 worker.1 | ".
PROCESS_LINE = re.compile(r"^\d{2}:\d{2}:\d{2} (?P<name>[\w.]+)\s*\| ?(?P<line>.*)$")
# tradingbot.logconfig.TextFormatter: "2026-11-26T07:26:32.035Z INFO celery.apps.worker: ...".
PROJECT_LOG_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: "
)
# Celery's own format, which the project's dictConfig replaces: "[2026-11-26 07:35:51,296: INFO/".
CELERY_LOG_LINE = re.compile(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}: \w+/")
# Variables of an enclosing make (``make test``) would confuse the make we start.
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: Any


def http(
    method: str, url: str, payload: Any = None, *, token: str | None = None, timeout: float = 10
) -> Response:
    """One JSON request; HTTP error statuses are returned, not raised."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http:// only
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
            status, headers, raw = reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return Response(status=status, headers={k.lower(): v for k, v in headers.items()}, body=body)


def unix_socket_answers(path: Path) -> bool:
    """Does a Redis server answer PING on this unix socket?"""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_command(path: Path, *args: str, timeout: float = 2) -> Any:
    """One command to the Redis server on this unix socket (RESP, enough of it for PING, LRANGE,
    LLEN): a string, an integer, a list of strings, or None."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(request.encode())
        return _read_reply(sock.makefile("rb"))


def _read_reply(reply: Any) -> Any:
    line = reply.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise OSError(f"redis error: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else reply.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return None if int(rest) < 0 else [_read_reply(reply) for _ in range(int(rest))]
    raise OSError(f"unexpected redis reply {line!r}")


def pids_with_env(name: str, value: str) -> dict[int, str]:
    """Live processes whose initial environment has ``name=value``: pid -> command line."""
    wanted = f"{name}={value}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
        found[int(entry.name)] = cmdline
    return found


@dataclass
class Stack:
    """A ``make run`` started in a session of its own, so that it has a process group to signal."""

    process: subprocess.Popen[bytes]
    var_dir: Path
    log_path: Path
    port: int
    env: dict[str, str]
    root: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_socket(self) -> Path:
        return self.var_dir / "redis.sock"

    def pid(self, name: str) -> int:
        """The pid of a running process of the stack (the supervisor's pid file in var/pids)."""
        return int((self.var_dir / "pids" / f"{name}.pid").read_text())

    def wait_restarted(self, name: str, old_pid: int, timeout: float) -> int:
        """Wait until the supervisor has started ``name`` again (a new pid); return that pid."""
        deadline = time.monotonic() + timeout
        while True:
            with suppress(FileNotFoundError, ValueError):
                pid = self.pid(name)
                if pid != old_pid:
                    return pid
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not restarted within {timeout}s" + self.tail())
            time.sleep(0.05)

    def output(self) -> str:
        return ANSI.sub("", self.log_path.read_text(errors="replace"))

    def tail(self, lines: int = 80) -> str:
        return "\n--- make run output (tail) ---\n" + "\n".join(self.output().splitlines()[-lines:])

    def process_lines(self, name: str) -> list[str]:
        """Lines the supervisor printed for one process (``worker``, ``beat``, ...), unprefixed."""
        lines = []
        for raw in self.output().splitlines():
            match = PROCESS_LINE.match(raw)
            if match and match["name"].split(".")[0] == name:
                lines.append(match["line"])
        return lines

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output(), re.MULTILINE)
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(
                    f"make run exited ({self.process.returncode}) before printing {pattern!r}"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the output after {timeout}s" + self.tail())
            time.sleep(0.2)

    def wait_healthy(self, timeout: float) -> Response:
        """Poll /healthz until it answers 200; return that response."""
        started = time.monotonic()
        last: Response | str = "no answer yet"
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"make run exited ({self.process.returncode}) before /healthz was ok"
                    + self.tail()
                )
            try:
                last = http("GET", f"{self.url}/healthz", timeout=3)
            except OSError as error:  # connection refused while daphne starts
                last = repr(error)
            else:
                if last.status == 200:
                    return last
            time.sleep(0.25)
        raise AssertionError(f"/healthz not 200 within {timeout}s, last: {last}" + self.tail())

    def celery(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / ".venv" / "bin" / "celery"), "-A", "tradingbot", *args],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def wait_celery_pong(self, timeout: float, destination: str | None = None) -> str:
        """Run ``celery inspect ping`` until it exits 0 with a pong; return its output."""
        args = ["inspect", "ping", *(["--destination", destination] if destination else [])]
        deadline = time.monotonic() + timeout
        while True:
            result = self.celery(*args)
            output = result.stdout + result.stderr
            if result.returncode == 0 and "pong" in output:
                return output
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"celery inspect ping: rc={result.returncode}\n{output}" + self.tail()
                )
            time.sleep(1)

    def interrupt(self, timeout: float = 30) -> float:
        """Ctrl-C as a terminal sends it (SIGINT to the whole group); seconds until make exited."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"make run still running {timeout}s after Ctrl-C" + self.tail()
            ) from None
        return time.monotonic() - started

    def leftovers(self, grace: float = 2.0) -> dict[int, str]:
        """Processes of this stack still alive ``grace`` seconds after make exited."""
        deadline = time.monotonic() + grace
        while True:
            found = pids_with_env("TRADINGBOT_VAR_DIR", str(self.var_dir))
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def kill(self) -> None:
        """Last resort: SIGKILL the group and anything of this stack that left it."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for pid in pids_with_env("TRADINGBOT_VAR_DIR", str(self.var_dir)):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@contextmanager
def make_run(
    root: Path, var_dir: Path, *, keep_services: bool, extra_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """Start ``make run PORT=<free port>`` with its own var dir; always SIGKILL it at the end.

    ``keep_services=False`` drops DATABASE_URL and REDIS_URL so that the stack uses its embedded
    defaults (SQLite and Redis in ``var_dir``).
    """
    var_dir = var_dir.resolve()
    assert len(str(var_dir)) < 80, f"var dir path too long for a unix socket: {var_dir}"
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    if not keep_services:
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
    env.update(TRADINGBOT_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", **(extra_env or {}))
    port = free_port()
    log_path = var_dir.parent / f"{var_dir.name}-make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}", "HOST=127.0.0.1"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    stack = Stack(
        process=process, var_dir=var_dir, log_path=log_path, port=port, env=env, root=root
    )
    try:
        yield stack
    finally:
        stack.kill()
