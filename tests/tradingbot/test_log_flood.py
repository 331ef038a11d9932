"""Requests anyone can send must never flood the log (the predecessor wrote 16M lines)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.process  # starts processes of its own

SCRIPT = """
from django.test import Client
client = Client(HTTP_HOST="evil.example.com")
for _ in range(3):
    assert client.get("/healthz").status_code == 400
"""


def test_a_bad_host_header_logs_one_line_without_traceback(tmp_path):
    # given: a process configured exactly as in production start-up
    env = {**os.environ, "TRADINGBOT_VAR_DIR": str(tmp_path), "LOG_FORMAT": "text"}
    env.pop("DATABASE_URL", None)
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SCRIPT],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # then
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "DisallowedHost" in line]
    assert len(lines) == 3, result.stdout
    assert "Traceback" not in result.stdout
    assert all(" ERROR django.security.DisallowedHost: " in line for line in lines)
