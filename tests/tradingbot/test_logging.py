"""Logging: one line per record on stdout, context rendered, no extra= key that can crash."""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tradingbot.logconfig import (
    RESERVED_ATTRS,
    JsonFormatter,
    OncePerInterval,
    QuietHighFrequencyTasks,
    TextFormatter,
    context,
)

SCANNED_PACKAGES = ("tradingbot", "accounts", "bots", "strategies", "backtests")
TICK = (
    "import logging; "
    "logging.getLogger('bots.tick').info('tick.done', extra={'bot_id': 7, 'user_id': 3})"
)


def manage_shell(
    tmp_path: Path, command: str, **variables: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRADINGBOT_VAR_DIR": str(tmp_path), **variables}
    for name in ("DATABASE_URL", "LOG_LEVEL", "DEBUG"):
        if name not in variables:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", command],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


# --- start-up configuration, seen from outside ------------------------------------------------


@pytest.mark.process
def test_it_writes_context_as_key_values_on_stdout_in_text_format(tmp_path):
    # when
    result = manage_shell(tmp_path, TICK, LOG_FORMAT="text")
    # then
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "bots.tick" in line]
    assert len(lines) == 1, result.stdout
    timestamp, rest = lines[0].split(" ", 1)
    assert rest == "INFO bots.tick: tick.done bot_id=7 user_id=3"
    assert timestamp.endswith("Z")
    assert "tick.done" not in result.stderr


@pytest.mark.process
def test_it_writes_one_json_object_per_record_on_stdout_in_json_format(tmp_path):
    # when
    result = manage_shell(tmp_path, TICK, LOG_FORMAT="json")
    # then
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    ticks = [record for record in records if record["logger"] == "bots.tick"]
    assert len(ticks) == 1, result.stdout
    tick = ticks[0]
    assert tick["bot_id"] == 7
    assert tick["user_id"] == 3
    assert (tick["level"], tick["message"]) == ("INFO", "tick.done")
    assert tick["time"].endswith("Z")
    assert "tick.done" not in result.stderr


@pytest.mark.process
def test_it_drops_records_below_the_configured_level(tmp_path):
    result = manage_shell(tmp_path, TICK, LOG_FORMAT="text", LOG_LEVEL="WARNING")
    assert result.returncode == 0, result.stderr
    assert "tick.done" not in result.stdout


@pytest.mark.process
def test_it_writes_a_django_record_once_and_only_through_the_project_handler(tmp_path):
    # given: production mode (DEBUG defaults to off)
    command = "import logging; logging.getLogger('django.template').error('template.broken')"
    # when
    result = manage_shell(tmp_path, command, LOG_FORMAT="json")
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("template.broken") == 1
    assert "template.broken" not in result.stderr


# --- formatters -------------------------------------------------------------------------------


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "bots.tick", logging.WARNING, __file__, 1, "order %s", ("sent",), None
    )
    record.__dict__.update(extra)
    return record


def _celery_record(logger: str, message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(logger, level, __file__, 1, message, (), None)


@pytest.mark.parametrize(
    ("logger", "message", "kept"),
    [
        ("celery.app.trace", "Task bots.tasks.bot_tick_task[1f] succeeded in 0.01s: 'held'", False),
        ("celery.worker.strategy", "Task bots.tasks.bot_tick_task[1f] received", False),
        ("celery.beat", "Scheduler: Sending due task dispatch-bot-ticks (bots.tasks...)", False),
        ("celery.app.trace", "Task backtests.tasks.run_backtest_task[2a] succeeded in 3s", True),
        ("bots.tick", "bot.tick bots.tasks.bot_tick_task", True),
    ],
)
def test_it_drops_celerys_bookkeeping_lines_of_the_per_second_tasks_only(logger, message, kept):
    assert QuietHighFrequencyTasks().filter(_celery_record(logger, message)) is kept


def test_it_keeps_a_failure_of_a_quiet_task():
    record = _celery_record(
        "celery.app.trace", "Task bots.tasks.bot_tick_task[1f] raised", logging.ERROR
    )
    assert QuietHighFrequencyTasks().filter(record)


def _record_at(created: float, message: str = "Unexpected exception in receive task"):
    record = _celery_record("channels_redis.pubsub", message, logging.ERROR)
    record.created = created
    return record


def test_it_lets_a_repeated_failure_through_once_per_interval_with_the_count_held_back():
    # given: a failure logged every second for ten minutes, the filter's interval five
    once = OncePerInterval(seconds=300)
    records = [_record_at(1000.0 + second) for second in range(600)]
    # when
    kept = [record for record in records if once.filter(record)]
    # then: the first, then the one five minutes on, which says how many it stood for
    assert [record.created for record in kept] == [1000.0, 1300.0]
    assert not hasattr(kept[0], "repeated")
    assert kept[1].repeated == 299


def test_it_keeps_a_different_failure_in_the_same_interval():
    once = OncePerInterval(seconds=300)
    assert once.filter(_record_at(1000.0, "Unexpected exception in receive task"))
    assert once.filter(_record_at(1001.0, "Something else went wrong"))
    assert not once.filter(_record_at(1002.0, "Something else went wrong"))


@pytest.mark.process
def test_it_logs_channels_redis_pubsub_reader_failures_once_per_interval(tmp_path):
    # given: the pub/sub reader's failure, as it logs it once a second while Redis is down
    command = (
        "import logging\n"
        "log = logging.getLogger('channels_redis.pubsub')\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        raise ConnectionError('Error 111 connecting to 127.0.0.1:6379')\n"
        "    except ConnectionError:\n"
        "        log.exception('Unexpected exception in receive task')\n"
    )
    # when
    result = manage_shell(tmp_path, command, LOG_FORMAT="text")
    # then: one line (and its traceback), not fifty
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Unexpected exception in receive task") == 1, result.stdout
    assert result.stdout.count("Traceback") == 1


def test_it_quotes_text_values_with_spaces_and_empty_values():
    line = TextFormatter().format(_record(reason="price moved", symbol="", bot_id=1))
    assert line.endswith(' WARNING bots.tick: order sent bot_id=1 reason="price moved" symbol=""')


def test_it_renders_values_json_cannot_encode_as_strings():
    from decimal import Decimal

    payload = json.loads(JsonFormatter().format(_record(price=Decimal("1.10"), path=Path("/x"))))
    assert payload["price"] == "1.10"
    assert payload["path"] == "/x"
    assert payload["message"] == "order sent"


def test_it_escapes_text_utf8_cannot_encode_in_both_formats():
    # given: a lone surrogate a client sent (JSON's "\\ud800"), in the message and a value
    record = _record(path="/api/\ud800")
    record.args = ("\ud800",)
    # when
    text = TextFormatter().format(record)
    payload = JsonFormatter().format(record)
    # then: both lines can be written, with the character as its escape
    text.encode("utf-8")
    payload.encode("utf-8")
    assert text.endswith(" WARNING bots.tick: order \\ud800 path=/api/\\ud800")
    assert json.loads(payload)["path"] == "/api/\ud800"


def test_it_includes_the_traceback_in_both_formats():
    try:
        raise ValueError("bad tick")
    except ValueError:
        record = _record()
        record.exc_info = sys.exc_info()
    text = TextFormatter().format(record)
    payload = json.loads(JsonFormatter().format(record))
    assert "Traceback" in text
    assert "ValueError: bad tick" in text
    assert "ValueError: bad tick" in payload["exc_info"]


# --- context() and the reserved names ---------------------------------------------------------


def test_it_renames_reserved_keys_in_context():
    assert context(message="x", bot_id=1) == {"ctx_message": "x", "bot_id": 1}


def test_it_logs_a_context_with_a_reserved_key_without_raising(caplog):
    # when
    with caplog.at_level(logging.INFO):
        logging.getLogger("bots.tick").info("tick.failed", extra=context(message="x", bot_id=1))
    # then
    [record] = [r for r in caplog.records if r.name == "bots.tick"]
    assert record.getMessage() == "tick.failed"
    assert record.ctx_message == "x"
    assert record.bot_id == 1


def test_it_shows_why_context_exists_a_raw_reserved_extra_key_raises(caplog):
    with caplog.at_level(logging.INFO), pytest.raises(KeyError, match="message"):
        logging.getLogger().info("x", extra={"message": "boom"})  # noqa: G101 (the point)


@pytest.mark.parametrize("key", sorted(RESERVED_ATTRS))
def test_it_makes_every_reserved_key_safe_to_log(caplog, key):
    with caplog.at_level(logging.INFO):
        logging.getLogger("bots.tick").info("tick.done", extra=context(**{key: "v"}))
    assert caplog.records[-1].__dict__[f"ctx_{key}"] == "v"


def _reserved_extra_keys(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, key) for every reserved name written literally in ``extra={...}``/``dict(...)``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "extra":
                continue
            value = keyword.value
            if isinstance(value, ast.Dict):
                keys = [k.value for k in value.keys if isinstance(k, ast.Constant)]
            elif (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id == "dict"
            ):
                keys = [k.arg for k in value.keywords if k.arg is not None]
            else:
                keys = []
            found += [(node.lineno, k) for k in keys if k in RESERVED_ATTRS]
    return found


def _count_extra_calls(tree: ast.AST) -> int:
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and any(k.arg == "extra" for k in node.keywords)
    )


def test_it_detects_a_reserved_extra_key_in_source():
    source = (
        "log.info('a', extra={'message': 1, 'bot_id': 2})\n"
        "log.info('b', extra=dict(args=1, user_id=2))\n"
        "log.info('c', extra=context(message=1))\n"
    )
    assert _reserved_extra_keys(ast.parse(source)) == [(1, "message"), (2, "args")]


def test_it_finds_no_reserved_extra_key_in_the_application_code():
    # given
    files = sorted(path for package in SCANNED_PACKAGES for path in (ROOT / package).rglob("*.py"))
    assert len(files) > 20
    # when
    offences, calls_with_extra = [], 0
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        calls_with_extra += _count_extra_calls(tree)
        offences += [
            f"{path.relative_to(ROOT)}:{line}: {key}" for line, key in _reserved_extra_keys(tree)
        ]
    # then
    assert calls_with_extra > 5, "the scan should see the logging calls of the application"
    assert offences == []
