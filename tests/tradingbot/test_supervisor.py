"""tradingbot.supervisor, the process runner of ``make run``, on tiny stand-in processes (``sleep``
and shell one-liners): it restarts what dies at once, backs off only what keeps dying, keeps the
others running, and stops everything (and what they left behind) on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tradingbot.supervisor import (
    MAX_BACKOFF_SECONDS,
    Program,
    backoff_seconds,
    read_procfile,
)

RESTART_WITHIN_SECONDS = 10


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def wait_until(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not {what} within {timeout}s"
        time.sleep(0.05)


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log: Path
    pid_dir: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pid(self, name: str) -> int | None:
        try:
            return int((self.pid_dir / f"{name}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def wait_pid(self, name: str, other_than: int | None = None) -> int:
        def fresh() -> int | None:
            pid = self.pid(name)
            return pid if pid and pid != other_than and alive(pid) else None

        return int(wait_until(fresh, RESTART_WITHIN_SECONDS, f"{name} running"))  # type: ignore[arg-type]


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(procfile: str, *names: str, stop_timeout: float = 5) -> Running:
        (tmp_path / "Procfile").write_text(procfile)
        log = tmp_path / "out.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "tradingbot.supervisor", "-f", str(tmp_path / "Procfile"),
                 "--pid-dir", str(tmp_path / "pids"), "--stop-timeout", str(stop_timeout), *names],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        running = Running(process, log, tmp_path / "pids")
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait()


def test_it_backs_off_only_a_process_that_keeps_dying_quickly():
    assert [backoff_seconds(n) for n in range(7)] == [0, 0, 0.5, 1, 2, 4, MAX_BACKOFF_SECONDS]
    assert backoff_seconds(50) == MAX_BACKOFF_SECONDS < RESTART_WITHIN_SECONDS


def test_it_reads_a_procfile(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# the stack\nweb: daphne --port $WEB_PORT app\n\nworker: celery worker\n")

    assert read_procfile(procfile) == [
        Program("web", "daphne --port $WEB_PORT app"),
        Program("worker", "celery worker"),
    ]
    procfile.write_text("web daphne\n")
    with pytest.raises(ValueError, match="Procfile:1"):
        read_procfile(procfile)


@pytest.mark.process
def test_it_restarts_a_killed_process_at_once_and_keeps_the_others(supervise):
    # given two long-running processes, one of which leaves a child in its process group (as a
    # Celery worker leaves its pool)
    stack = supervise("keep: sleep 300\nworker: sleep 301 & sleep 302\n")
    keep = stack.wait_pid("keep")
    worker = stack.wait_pid("worker")
    pool = wait_until(lambda: _child_of(worker) or _group_member(worker, "sleep 301"), 5, "pool")

    # when the worker is killed with SIGKILL
    killed_at = time.monotonic()
    os.kill(worker, signal.SIGKILL)

    # then it runs again with a new pid within seconds, with one line saying so, the process it
    # left behind is gone, and the other process was not touched
    restarted = stack.wait_pid("worker", other_than=worker)
    assert time.monotonic() - killed_at < RESTART_WITHIN_SECONDS
    line = rf"\| worker\.1 exited \(pid={worker}, exit code -9\) after [\d.]+s; restarting in 0\.0s"
    assert re.search(line, stack.output()), stack.output()
    assert restarted != worker
    wait_until(lambda: not alive(int(pool)), 5, "the left-behind child gone")
    assert stack.pid("keep") == keep
    assert alive(keep)
    assert stack.process.poll() is None


@pytest.mark.process
def test_it_backs_off_a_process_that_keeps_dying_and_keeps_the_others(supervise):
    # given a process that exits with code 3 as soon as it starts, next to a healthy one
    stack = supervise("broken: echo starting; exit 3\nkeep: sleep 300\n")
    keep = stack.wait_pid("keep")

    # when it has died a few times
    wait_until(lambda: stack.output().count("broken.1 exited") >= 4, 15, "four exits")

    # then each exit is one line with its code, the waits grow, and the other process runs on
    exits = re.findall(
        r"broken\.1 exited \(pid=\d+, exit code 3\) .*restarting in ([\d.]+)s", stack.output()
    )
    assert [float(d) for d in exits[:4]] == [0.0, 0.5, 1.0, 2.0], stack.output()
    assert re.search(r"^\d\d:\d\d:\d\d broken\.1 +\| starting$", stack.output(), re.M)
    assert stack.pid("keep") == keep
    assert alive(keep)


@pytest.mark.process
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_everything_and_kills_what_ignores_sigterm(supervise, signum):
    # given a process that ignores SIGTERM, a well-behaved one, and a child left in a group
    stack = supervise(
        "stubborn: trap '' TERM; while true; do sleep 0.1; done\nkeep: sleep 300 & sleep 301\n",
        stop_timeout=1,
    )
    pids = [stack.wait_pid("stubborn"), stack.wait_pid("keep")]
    child = int(wait_until(lambda: _group_member(pids[1], "sleep 300"), 5, "child"))

    # when Ctrl-C (SIGINT to the supervisor) or SIGTERM comes
    os.kill(stack.process.pid, signum)

    # then the supervisor exits 0 within the stop timeout and nothing of it is left
    assert stack.process.wait(timeout=10) == 0
    assert [pid for pid in [*pids, child] if alive(pid)] == []
    assert "stubborn.1 still running after 1s: SIGKILL" in stack.output()
    assert list(stack.pid_dir.glob("*.pid")) == []


def _child_of(pid: int) -> int | None:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = children.read_text().split() if children.exists() else []
    return int(found[0]) if found else None


def _group_member(pgid: int, cmdline: str) -> int | None:
    """A process in group ``pgid`` (other than its leader) running ``cmdline``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == pgid:
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            if (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip() == cmdline:
                return int(entry.name)
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return None
