"""The API's JSON parser (DRF's ``DEFAULT_PARSER_CLASSES``): DRF's, plus the limits that keep a
hostile body from reaching a view.

- **Nesting.** A body nested deeper than ``settings.JSON_MAX_DEPTH`` (arrays and objects) is
  refused, and so is one so deep that the decoder itself runs out of stack (``RecursionError``):
  no API body is more than a few levels deep, and deep data makes every later walk over it
  (validation, error messages, logging) recursive.
- **Lone surrogates.** JSON may spell a UTF-16 surrogate alone (``"\\ud800"``); it decodes to a
  Python string that no codec can encode, so echoing it in an error message or a log line, or
  storing it, fails. Such a body is not Unicode text and is refused whole, at the door. (Raw
  bytes cannot carry one: they are decoded strictly; only the escape can.)

Both are a 400 ``malformed_request``, like any other body that is not JSON. The checks never
recurse, and the surrogate one runs only when the text has a surrogate escape at all.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

from tradingbot.logconfig import encodable

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        parse_constant = strict_constant if self.strict else None  # NaN, Infinity: refused
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_constant=parse_constant)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError among them
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError(_too_deep()) from None
        check_depth(data, max_depth=settings.JSON_MAX_DEPTH)
        if _SURROGATE_ESCAPE.search(text):  # maybe a lone one (a pair is a character)
            check_unicode(data)
        return data


def check_depth(data: Any, *, max_depth: int) -> None:
    """Raise ``ParseError`` if ``data`` (decoded JSON) nests arrays and objects deeper than
    ``max_depth``."""
    level = [data] if isinstance(data, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise ParseError(_too_deep())
        inner: list[Any] = []
        for value in level:
            items = value.values() if isinstance(value, dict) else value
            inner.extend(item for item in items if isinstance(item, dict | list))
        level = inner


def check_unicode(data: Any) -> None:
    """Raise ``ParseError`` if a string of ``data`` (a value or a key) holds a lone surrogate,
    naming where (``params.fast``)."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # in C: quick when all is well
    except UnicodeEncodeError:
        pass
    else:
        return
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            _check_text(value, where or "the top level")
        elif isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key, where or "the top level", is_key=True)
                stack.append((item, f"{where}.{key}" if where else str(key)))


def _check_text(text: str, where: str, *, is_key: bool = False) -> None:
    if text.isascii() or _SURROGATE.search(text) is None:
        return
    what = f"a key at {where}" if is_key else f"the string at {where}"
    raise ParseError(
        f"JSON parse error - {encodable(what)} holds a lone UTF-16 surrogate (such as \\ud800), "
        "which is not Unicode text."
    )


def _too_deep() -> str:
    return f"JSON parse error - nested deeper than {settings.JSON_MAX_DEPTH} levels."
