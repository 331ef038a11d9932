"""Logging: one dictConfig for every process (daphne, Celery worker, Celery beat, manage.py).

Records go to stdout as one line each. Context passed with ``extra=`` (``bot_id``, ``user_id``,
...) is rendered after the message in text mode and as fields in JSON mode.

``extra`` keys that collide with ``LogRecord`` attributes make ``Logger.makeRecord`` raise
``KeyError`` (the predecessor's error handler crashed that way on ``extra={"message": ...}``).
``context()`` renames such keys instead of letting them crash the caller.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra``.
RESERVED_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


def context(**fields: Any) -> dict[str, Any]:
    """Build an ``extra`` mapping that can never collide with a reserved LogRecord attribute."""
    return {
        (f"ctx_{key}" if key in RESERVED_ATTRS else key): value for key, value in fields.items()
    }


def encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (a lone UTF-16 surrogate, which JSON's ``"\\ud800"``
    decodes to) written as its escape, ``\\ud800``: safe to send, store or write to a log."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in RESERVED_ATTRS and k[0] != "_"}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000Z INFO logger: message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in sorted(extras.items()))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        # A value a client sent can be text no codec writes: escape it rather than lose the line
        # (the handler's error report is a traceback of its own).
        return encodable(line)


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or text == "") else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, and exc_info if any."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_extras(record))
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class SecurityOneLine(logging.Filter):
    """Django logs every bad Host header or bad signature with a traceback; one line is enough.

    Anyone can send such requests, so a traceback each would let a scanner flood the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security"):
            record.exc_info = None
            record.exc_text = None
        return True


# Celery's per-task lines ("Received task", "succeeded in", beat's "Sending due task") for the
# tasks that run every second or once per bot and candle. The tick writes its own line with the
# bot's id; three more lines of Celery bookkeeping per tick would bury it.
QUIET_TASKS = (
    "bots.tasks.bot_tick_task",
    "bots.tasks.bot_ticks_task",
    "bots.tasks.dispatch_ticks_task",
    "dispatch-bot-ticks",
)
CELERY_BOOKKEEPING = ("celery.app.trace", "celery.worker.strategy", "celery.beat")


class QuietHighFrequencyTasks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith(CELERY_BOOKKEEPING):
            return True
        text = record.getMessage()
        return not any(name in text for name in QUIET_TASKS)


class OncePerInterval(logging.Filter):
    """Let a logger's repeated failure through once per ``seconds`` (with how many were held back).

    For third-party loops that log on every iteration of a failure: channels-redis' pub/sub reader
    logs a traceback every second while Redis is down.
    """

    def __init__(self, seconds: float = 300.0) -> None:
        super().__init__()
        self.seconds = seconds
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        last = self._last.get(key)
        if last is not None and record.created - last < self.seconds:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = record.created
        held = self._held.pop(key, 0)
        if held:
            record.repeated = held
        return True


def build_logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    formatter = "json" if fmt == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"()": "tradingbot.logconfig.TextFormatter"},
            "json": {"()": "tradingbot.logconfig.JsonFormatter"},
        },
        "filters": {
            "security_one_line": {"()": "tradingbot.logconfig.SecurityOneLine"},
            "quiet_tasks": {"()": "tradingbot.logconfig.QuietHighFrequencyTasks"},
            "once_per_interval": {"()": "tradingbot.logconfig.OncePerInterval"},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": formatter,
                "filters": ["security_one_line", "quiet_tasks"],
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Naming "django" drops Django's own console/mail_admins handlers: one line, one place.
            "django": {"handlers": [], "level": level, "propagate": True},
            # Django's request logger repeats what our error handler already logged once.
            "django.request": {"level": "ERROR", "propagate": True},
            "django.server": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
            "celery": {"level": "INFO"},
            # ccxt logs each request's headers (API key, passphrase) at DEBUG: never let it.
            "ccxt": {"level": "INFO"},
            # Apprise's own lines can name a channel's host or token: kept out of the log; the
            # delivery service captures them (scrubbed) as the channel's last error instead.
            "apprise": {"handlers": [], "level": "WARNING", "propagate": False},
            # Its pub/sub reader logs a traceback every second while Redis is down.
            "channels_redis.pubsub": {"filters": ["once_per_interval"]},
        },
    }
