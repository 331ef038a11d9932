"""What the commands that fetch from an exchange share: the time range and the progress bar."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.core.management.base import CommandError, OutputWrapper

from markets.candle_csv import format_ms

RESUME_HINT = "The pages fetched so far are stored; run the same command again to resume."


def parse_time(text: str, option: str) -> int:
    """Epoch ms of an ISO date or date-time; UTC unless it names its offset."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{option} {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def fetch_range(since: str, until: str | None) -> tuple[int, int | None]:
    """``--since``/``--until`` as epoch ms, refused when the range is empty or in the future."""
    since_ms = parse_time(since, "--since")
    until_ms = None
    if until is not None:
        until_ms = parse_time(until, "--until")
        if until_ms <= since_ms:
            raise CommandError(
                f"--until ({format_ms(until_ms)}) must be after --since ({format_ms(since_ms)})"
            )
    if since_ms >= time.time() * 1000:
        raise CommandError(f"--since ({format_ms(since_ms)}) is in the future")
    return since_ms, until_ms


class ProgressBar:
    """``[#####-----]  50%  500/1000`` redrawn in place with ``\\r``."""

    WIDTH = 30

    def __init__(self, stream: OutputWrapper, label: str) -> None:
        self.stream = stream
        self.label = label
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {done}/{total}", ending="")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("", ending="\n")
            self.stream.flush()


def progress_bar(stderr: OutputWrapper, label: str) -> ProgressBar | None:
    """A bar on ``stderr`` when it is a terminal; none in logs and pipes."""
    return ProgressBar(stderr, label) if stderr.isatty() else None
