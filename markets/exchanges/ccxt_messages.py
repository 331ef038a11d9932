"""What an exchange said, out of a ccxt error message: its own words and its error code."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_EXCHANGE_MESSAGE = 300
_CODE_PATTERN = re.compile(r'"(?:code|err_code)"\s*:\s*"?([A-Za-z0-9_.-]+)')


def exchange_said(message: str, exchange_id: str) -> tuple[str, str | None]:
    """The exchange's own words and error code, out of a ccxt message (``"bitget {json}"``)."""
    code = None
    said = message
    start = message.find("{")
    if start != -1:
        try:
            body = json.loads(message[start:])
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = _text(body.get("code", body.get("err_code")))
            said = _text(body.get("msg", body.get("err_msg"))) or said
    if code is None:
        match = _CODE_PATTERN.search(message)
        code = match.group(1) if match else None
    prefix = exchange_id + " "
    if said.startswith(prefix):
        said = said[len(prefix) :]
    said = said.strip() or "no details"
    if len(said) > MAX_EXCHANGE_MESSAGE:
        said = said[: MAX_EXCHANGE_MESSAGE - 1] + "…"
    return said, code


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
