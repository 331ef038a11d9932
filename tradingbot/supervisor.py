"""The process supervisor of ``make run``: start every process of the Procfile, restart one that
dies, stop them all on Ctrl-C.

Run ``python -m tradingbot.supervisor [-f Procfile] [NAME ...]`` (no name: every process).

- Each process runs ``sh -c "exec <command>"`` (no ``exec`` for a compound command) in a
  session of its own: a terminal's Ctrl-C reaches the supervisor only, which then stops them
  all itself. Their output (stdout and stderr) is printed line by line as
  ``HH:MM:SS name.1 | line``, as honcho printed it; the supervisor's own lines come from
  ``system``.
- A process that exits while the stack runs is restarted at once, with one line giving its name,
  pid and exit code. What it left in its process group (a Celery worker's pool children) is
  killed first. Only a process that keeps dying within ``QUICK_EXIT_SECONDS`` of its start waits
  before its restart, doubling from ``FIRST_BACKOFF_SECONDS`` up to ``MAX_BACKOFF_SECONDS``,
  so a restart always comes within 10 seconds and a broken command does not spin.
- SIGINT (Ctrl-C), SIGTERM or SIGHUP stops them all: SIGTERM to each process group, SIGKILL to
  what is left after ``STOP_TIMEOUT_SECONDS``, then the supervisor exits. A second Ctrl-C kills
  at once.
- A supervisor that is itself SIGKILLed cannot stop anything: its processes keep running (as
  under honcho); stop them by their pid files.
- The pid of each running process is in ``<pid dir>/<name>.pid`` (``$TRADINGBOT_VAR_DIR/pids``
  or ``var/pids``), for an operator or a test to find it.

The ground floor: this module imports no app and no Django, only the standard library.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

QUICK_EXIT_SECONDS = 5.0
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.1
COMPOUND = re.compile(r"[;&|\n()]")
PROCFILE_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):\s*(?P<command>.+)$")


@dataclass
class Program:
    """One process to keep running: its name and shell command."""

    name: str
    command: str

    @property
    def shell_command(self) -> str:
        """A simple command replaces the shell (``exec``), so its pid is the program's own; a
        compound one (``a; b``, ``a & b``) runs under the shell."""
        return self.command if COMPOUND.search(self.command) else f"exec {self.command}"


@dataclass
class _Running:
    program: Program
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    restart_at: float = 0.0
    reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.program.name}.1"


def read_procfile(path: Path) -> list[Program]:
    """The ``name: command`` lines of a Procfile (blank lines and ``#`` comments skipped)."""
    programs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PROCFILE_LINE.match(line)
        if not match:
            raise ValueError(f"{path}:{number}: not a 'name: command' line")
        programs.append(Program(match["name"], match["command"].strip()))
    return programs


def backoff_seconds(quick_exits: int) -> float:
    """Wait before the restart of a process that died ``quick_exits`` times in a row within
    ``QUICK_EXIT_SECONDS`` of its start (0: it had run for longer; restart at once)."""
    if quick_exits <= 1:
        return 0.0
    return float(min(FIRST_BACKOFF_SECONDS * 2 ** (quick_exits - 2), MAX_BACKOFF_SECONDS))


class Supervisor:
    """Keeps ``programs`` running until a stopping signal; see the module docstring."""

    def __init__(
        self,
        programs: Sequence[Program],
        *,
        pid_dir: Path,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
        out: IO[str] = sys.stdout,
    ) -> None:
        self.children = [_Running(program) for program in programs]
        self.pid_dir = pid_dir
        self.stop_timeout = stop_timeout
        self.out = out
        self.width = max([len("system"), *(len(child.label) for child in self.children)])
        self._print_lock = threading.Lock()
        # Set by the signal handler: a plain flag, never a threading.Event. Event.set() takes a
        # lock, and a signal that lands while the main thread holds that same lock (inside
        # Event.wait) deadlocks the handler: Ctrl-C then never stopped anything.
        self._stop_requested = False
        self._interrupts = 0

    # --- Output ----------------------------------------------------------------------------

    def say(self, label: str, line: str) -> None:
        with self._print_lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {label:<{self.width}} | {line}\n")
            self.out.flush()

    def _pipe(self, child: _Running, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.say(child.label, raw.decode(errors="replace").rstrip("\r\n"))
        stream.close()

    # --- Starting and restarting -----------------------------------------------------------

    def start(self, child: _Running) -> None:
        process = subprocess.Popen(
            ["/bin/sh", "-c", child.program.shell_command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child.process, child.started_at = process, time.monotonic()
        assert process.stdout is not None
        child.reader = threading.Thread(
            target=self._pipe, args=(child, process.stdout), name=f"out-{child.label}", daemon=True
        )
        child.reader.start()
        self._write_pid(child.program.name, process.pid)
        self.say("system", f"{child.label} started (pid={process.pid})")

    def _exited(self, child: _Running, code: int) -> None:
        """``child`` exited by itself: clear its group and plan its restart."""
        assert child.process is not None
        pid = child.process.pid
        self._kill_group(pid, signal.SIGKILL)
        if child.reader is not None:
            child.reader.join(timeout=1)
        ran = time.monotonic() - child.started_at
        child.quick_exits = child.quick_exits + 1 if ran < QUICK_EXIT_SECONDS else 0
        delay = backoff_seconds(child.quick_exits)
        child.process, child.restart_at = None, time.monotonic() + delay
        self._remove_pid(child.program.name)
        self.say(
            "system",
            f"{child.label} exited (pid={pid}, exit code {code}) after {ran:.1f}s; "
            f"restarting in {delay:.1f}s",
        )

    def step(self) -> None:
        """One round: notice exits, start what is due."""
        for child in self.children:
            if self._stop_requested:
                return
            if child.process is None:
                if time.monotonic() >= child.restart_at:
                    self.start(child)
                continue
            code = child.process.poll()
            if code is not None:
                self._exited(child, code)

    def run(self) -> int:
        """Start every program, keep them running until a stopping signal; returns the exit code."""
        self._install_signal_handlers()
        self.say("system", "supervising " + ", ".join(c.label for c in self.children))
        for child in self.children:
            self.start(child)
        while not self._stop_requested:
            self.step()
            time.sleep(POLL_SECONDS)
        self.stop_all()
        return 0

    # --- Stopping --------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: terminal closed
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._interrupts += 1
        if self._interrupts > 1:  # a second Ctrl-C: no more waiting
            self._signal_all(signal.SIGKILL)
        self._stop_requested = True

    def stop_all(self) -> None:
        """SIGTERM every process group, SIGKILL what is left after ``stop_timeout`` seconds."""
        timeout = self.stop_timeout
        live = [c for c in self.children if c.process is not None]
        self.say("system", "sending SIGTERM to " + ", ".join(c.label for c in live))
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(c.process.poll() is None for c in live if c.process) and (
            time.monotonic() < deadline
        ):
            time.sleep(POLL_SECONDS)
        for child in live:
            assert child.process is not None
            if child.process.poll() is None:
                self.say("system", f"{child.label} still running after {timeout:.0f}s: SIGKILL")
            self._kill_group(child.process.pid, signal.SIGKILL)  # and whatever it left behind
            child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=1)
            self.say("system", f"{child.label} stopped (exit code {child.process.returncode})")
            self._remove_pid(child.program.name)

    def _signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                self._kill_group(child.process.pid, signum)

    @staticmethod
    def _kill_group(pgid: int, signum: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)

    # --- Pid files -------------------------------------------------------------------------

    def _write_pid(self, name: str, pid: int) -> None:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        (self.pid_dir / f"{name}.pid").write_text(f"{pid}\n")

    def _remove_pid(self, name: str) -> None:
        (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)


def default_pid_dir() -> Path:
    return Path(os.environ.get("TRADINGBOT_VAR_DIR") or "var") / "pids"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradingbot.supervisor", description=__doc__)
    parser.add_argument("-f", "--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument("--pid-dir", type=Path, default=None)
    parser.add_argument("--stop-timeout", type=float, default=STOP_TIMEOUT_SECONDS)
    parser.add_argument("names", nargs="*", help="the processes to run (default: all)")
    args = parser.parse_args(argv)
    programs = read_procfile(args.procfile)
    known = {p.name: p for p in programs}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"not in {args.procfile}: {', '.join(unknown)}")
    chosen = [known[name] for name in args.names] if args.names else programs
    pid_dir = args.pid_dir or default_pid_dir()
    return Supervisor(chosen, pid_dir=pid_dir, stop_timeout=args.stop_timeout).run()


if __name__ == "__main__":
    sys.exit(main())
