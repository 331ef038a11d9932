"""What the bench scripts share (a module, not a bench: ``make bench`` skips ``bench/_*.py``)."""

from __future__ import annotations

import os
from pathlib import Path


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
