"""Benchmark: notification delivery latency, from the event written (its transaction committed)
to the message received by a local HTTP server, for 100 events; then the same with a second
channel of the same user that is down, to show that it delays nothing else.

It sets up its own stack, as bench/ticks.py does: a throwaway SQLite database (``DATABASE_URL``,
if set, is used instead), the embedded Redis (or ``REDIS_URL``), and a real ``celery worker``
(prefork, ``--concurrency 2``) on a queue of its own. Each event is ``notify()`` in a
transaction of its own, one every ``--gap`` seconds, as a bot's fills would be; the burst
grouping is off (``NOTIFY_MIN_INTERVAL_SECONDS=0``) so that every event is its own message and
its own latency. Three runs:

1. the peer: one ``json://`` channel on a local HTTP server;
2. the same, plus a channel whose port refuses connections;
3. the same, plus a channel whose server accepts and never answers (it hangs until Apprise's
   timeouts, 4 s to connect, 4 s to read).

Each run prints p50 / p90 / max and the ratio of its p50 to the peer's. The machine is shared
and noisy: compare ratios, not milliseconds.

    .venv/bin/python bench/notifications.py [--events 100] [--gap 0.05]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import django_for_bench  # noqa: E402


def start_worker(env: dict[str, str], queue: str, log_path: Path) -> subprocess.Popen[bytes]:
    from tradingbot.celery import app

    hostname = f"{queue}@bench"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tradingbot", "worker", "--pool", "prefork",
         "--concurrency", "2", "--queues", queue, "--hostname", hostname, "--without-mingle",
         "--without-gossip", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[hostname], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the worker did not start:\n{log_path.read_text()}")
    return process


def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: connecting is refused


def hanging_server() -> tuple[socket.socket, int]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


def one_run(label: str, user: Any, hook: Any, events: int, gap: float) -> list[float]:
    from django.db import transaction

    from accounts.notifications import notify

    hook.received.clear()
    written: dict[str, float] = {}
    for n in range(events):
        title = f"{label} {n}"
        with transaction.atomic():
            notify(user=user, kind="order_filled", key=f"{label}-{n}", title=title, body="fill")
        written[title] = time.time()
        time.sleep(gap)
    deadline = time.monotonic() + 120
    while len(arrivals := told(hook.received)) < events and time.monotonic() < deadline:
        time.sleep(0.05)
    titles = [title for title, _ in arrivals]
    if sorted(titles) != sorted(written):  # each event exactly once
        raise SystemExit(f"{label}: {len(arrivals)} events told, {len(written)} written")
    return [(at - written[title]) * 1000 for title, at in arrivals]


def told(received: list[Any]) -> list[tuple[str, float]]:
    """``(event title, arrival time)`` of every event in the messages received; a batched
    message (``"... (+N more)"``) carries one ``• title: body`` line per event."""
    events = []
    for message in list(received):
        if "(+" not in message.body["title"]:
            events.append((message.body["title"], message.at))
            continue
        for line in message.body["message"].splitlines():
            events.append((line.removeprefix("• ").split(": ", 1)[0], message.at))
    return events


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace, work_dir: Path) -> None:
    queue = f"bench-notify-{uuid.uuid4().hex[:8]}"
    env, embedded = django_for_bench(
        work_dir, NOTIFY_QUEUE=queue, NOTIFY_MIN_INTERVAL_SECONDS="0", LOG_LEVEL="WARNING"
    )
    from django.core.management import call_command

    from accounts.models import NotificationChannel, User
    from accounts.notifications import channel_create
    from tests.notify_helpers import start_webhook_server

    call_command("migrate", verbosity=0, interactive=False)
    hook = start_webhook_server()
    hang, hang_port = hanging_server()
    worker = start_worker(env, queue, work_dir / "worker.log")
    user = User.objects.create_user(f"bench-{uuid.uuid4().hex[:6]}@example.com")
    try:
        channel_create(user=user, name="up", url=hook.url("up"))
        results = {"peer: one channel up": one_run("peer", user, hook, args.events, args.gap)}
        down = channel_create(user=user, name="refused", url=f"json://127.0.0.1:{refused_port()}/x")
        results["+ a channel refusing connections"] = one_run(
            "refused", user, hook, args.events, args.gap
        )
        down.delete()
        channel_create(user=user, name="hanging", url=f"json://127.0.0.1:{hang_port}/x")
        results["+ a channel that hangs"] = one_run("hanging", user, hook, args.events, args.gap)
        messages = len(hook.received)
        states = list(NotificationChannel.objects.filter(user=user).values_list("name", "status"))
        table(results, args)
        print(f"messages in the last run: {messages} (bursts batched); channels: {states}")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        hook.stop()
        hang.close()
        user.delete()
        if embedded is not None:
            embedded.terminate()
            embedded.wait(timeout=10)


def table(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    peer = statistics.median(results["peer: one channel up"])
    print(
        f"\n{args.events} events, one every {args.gap * 1000:.0f} ms, latency event written → "
        "received by the local HTTP server (ms), through a real worker (prefork, 2 processes)"
    )
    print(f"{'run':<36} {'n':>4} {'p50':>8} {'p90':>8} {'max':>8} {'p50 ÷ peer':>11}")
    for label, values in results.items():
        p50 = statistics.median(values)
        print(
            f"{label:<36} {len(values):>4} {p50:>8.1f} {percentile(values, 0.9):>8.1f} "
            f"{max(values):>8.1f} {p50 / peer:>11.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between events")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
