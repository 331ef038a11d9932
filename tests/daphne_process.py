"""A real daphne for tests that need the app served by another process: the Procfile's ``web``
command, ``python -m tradingbot.live.daphne_server`` (daphne, failing bad WebSocket frames with a
close frame).

The browser tests, the live-connection tests and the smoke check all start one the same way: on
a free port, with an environment on the test database (``server_env`` in ``tests/conftest.py``),
its output in a log file that the test reads when something goes wrong.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT
from tests.stack_helpers import free_port

START_TIMEOUT = 60.0  # s; the machine is slow and shared
SERVER_MODULE = "tradingbot.live.daphne_server"  # what the Procfile's web line runs


@dataclass
class Daphne:
    """The web server (``SERVER_MODULE``) serving ``tradingbot.asgi`` on ``port``, with
    ``options`` added.

    ``start`` may be called again after ``kill`` or ``stop``: the server comes back on the same
    port and goes on writing the same log.
    """

    port: int
    env: Mapping[str, str]
    log_path: Path
    options: tuple[str, ...] = ()
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "daphne has not been started"
        return self._process

    def start(self) -> Daphne:
        """Start the server and return once it answers ``/healthz``."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", SERVER_MODULE, "-b", "127.0.0.1", "-p", str(self.port),
                 *self.options, "tradingbot.asgi:application"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"daphne did not become healthy at {self.url}:\n{self.log()}")
            time.sleep(0.2)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """As a crash: SIGKILL, no close frames; the kernel drops its connections."""
        if self.running():
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """As a deployment stops it: SIGTERM, then SIGKILL if it does not exit in time."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_mark(self) -> int:
        """Where the log ends now; ``log_since(mark)`` is what was written after."""
        return self.log_path.stat().st_size

    def log_since(self, mark: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")


@contextmanager
def daphne_running(
    *, env: Mapping[str, str], log_path: Path, options: tuple[str, ...] = ()
) -> Iterator[Daphne]:
    """A daphne on a free port, healthy, for the time of the ``with`` block."""
    server = Daphne(port=free_port(), env=env, log_path=log_path, options=options).start()
    try:
        yield server
    finally:
        server.stop()
