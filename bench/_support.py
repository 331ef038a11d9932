"""What the bench scripts share (a module, not a bench: ``make bench`` skips ``bench/_*.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def prepare_environment(work_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of this process and of the processes it starts, set before Django
    loads: the run's own var dir and database (SQLite there unless DATABASE_URL is set), plus
    ``extra`` (a queue of the run's own...)."""
    env = {
        "TRADINGBOT_VAR_DIR": str(work_dir),
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{work_dir}/bench.sqlite3",
        **extra,
    }
    os.environ.update(env)
    return {**os.environ, **env}


def django_for_bench(work_dir: Path, **extra: str) -> tuple[dict[str, str], Any]:
    """Django set up on the run's own environment (``prepare_environment``), with an embedded
    Redis of the run's own when REDIS_URL is unset: the environment for the processes the bench
    starts, and that Redis process (None with REDIS_URL) for the bench to stop."""
    env = prepare_environment(work_dir, **extra)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")
    import django

    django.setup()
    from django.conf import settings

    if not settings.EMBEDDED_REDIS:
        return env, None
    from tradingbot import embedded_redis

    return env, embedded_redis.start_background(work_dir / "redis.sock")
