"""The API's JSON parser (DRF's ``DEFAULT_PARSER_CLASSES``): DRF's, plus the limits that keep a
hostile body from reaching a view.

- **Nesting.** A body nested deeper than ``settings.JSON_MAX_DEPTH`` (arrays and objects) is
  refused, and so is one so deep that the decoder itself runs out of stack (``RecursionError``):
  no API body is more than a few levels deep, and deep data makes every later walk over it
  (validation, error messages, logging) recursive.
- **Lone surrogates.** JSON may spell a UTF-16 surrogate alone (``"\\ud800"``); it decodes to a
  Python string that no codec can encode, so echoing it in an error message or a log line, or
  storing it, fails. Such a body is not Unicode text and is refused whole, at the door.

Both are a 400 ``malformed_request``, like any other body that is not JSON.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from tradingbot.logconfig import encodable

_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_too_deep()) from None
        check_json_value(data, max_depth=settings.JSON_MAX_DEPTH)
        return data


def check_json_value(data: Any, *, max_depth: int) -> None:
    """Raise ``ParseError`` if ``data`` (decoded JSON) nests deeper than ``max_depth`` or holds a
    string (a value or a key) with a lone surrogate. Iterative: never recurses itself."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, dict | list):
            if depth >= max_depth:
                raise ParseError(_too_deep())
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    _check_text(key, where or "the top level", is_key=True)
                stack.append((item, depth + 1, path))


def _check_text(text: str, where: str, *, is_key: bool = False) -> None:
    if text.isascii() or _SURROGATE.search(text) is None:
        return
    what = f"a key at {where}" if is_key else f"the string at {where or 'the top level'}"
    raise ParseError(
        f"JSON parse error - {encodable(what)} holds a lone UTF-16 surrogate (such as \\ud800), "
        "which is not Unicode text."
    )


def _too_deep() -> str:
    return f"JSON parse error - nested deeper than {settings.JSON_MAX_DEPTH} levels."
