"""Daphne leaves request bodies to Django.

daphne's requests are Twisted ``http.Request``s, which parse a ``multipart/form-data`` POST body
into ``request.args`` before daphne sees the request (daphne never reads ``args``), and answer one
that does not parse with a bare ``400`` and an empty body, closing the connection: no error
envelope, no access-log line. With the parsing off, Django reads the body as it does under any
server: the API answers 415 ``unsupported_media_type`` (it takes JSON only), a page's form a 400
``malformed_request``. It also spares parsing every upload twice.
"""

from __future__ import annotations

import sys
from typing import Any


def leave_request_bodies_to_django() -> None:
    """In a daphne process (its HTTP protocol module loaded, as ``daphne`` loads it before the
    application), make its requests skip Twisted's form parsing. Elsewhere (a Celery worker, a
    test), do nothing: importing daphne's server would install a Twisted reactor."""
    protocol = sys.modules.get("daphne.http_protocol")
    if protocol is None or getattr(protocol.WebRequest, "leaves_bodies_to_django", False):
        return
    base = protocol.WebRequest

    class WebRequest(base):  # type: ignore[misc, valid-type]
        leaves_bodies_to_django = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    # daphne's HTTPFactory reads the module's WebRequest each time it builds a connection.
    setattr(protocol, "WebRequest", WebRequest)  # noqa: B010
