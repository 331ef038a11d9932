"""The web server: daphne, with WebSocket faults closed by a close frame instead of a dropped TCP.

Run it as daphne, with daphne's options (the Procfile's ``web`` line)::

    python -m tradingbot.live.daphne_server --bind 0.0.0.0 --port 8000 \
        --websocket-max-message-size 1048576 tradingbot.asgi:application

Daphne's WebSocket protocol is autobahn's, and autobahn's ``failByDrop`` option is on by default:
when a client breaks the protocol (a message over ``--websocket-max-message-size`` or a frame
over ``--websocket-max-frame-size``, invalid UTF-8 in a text frame, a malformed frame) it drops
the TCP connection without a close frame, so the client sees 1006 and cannot tell why. Daphne's
command line has no option for it. This server turns it off: autobahn then fails the connection
with a close frame carrying the RFC 6455 code and a reason (1009 message too big, 1007 invalid
UTF-8, 1002 protocol error) and stops reading the rest of that message, so nothing more is
buffered. The application's ``websocket.disconnect`` carries that code too (autobahn would report
the code of the client's reply, or 1006 when the client does not reply), so that the
connection's log line says why it ended. Autobahn's own log line about it goes to Twisted's log,
which daphne discards unless it runs with ``-v 2``.

It also leaves request bodies to Django. Daphne's requests are Twisted ``http.Request``s, which
parse a ``multipart/form-data`` body themselves before daphne sees the request (daphne never
reads what they parse) and answer one that does not parse with a bare 400 and an empty body: no
error envelope, no access-log line. With that parsing off, Django reads the body as under any
server (the API answers 415 ``unsupported_media_type``, a page's form the site's 400), and no
upload is parsed twice.
"""

from __future__ import annotations

# daphne.server installs the asyncio Twisted reactor: it is imported before anything Twisted.
from daphne.server import Server  # isort: skip
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol


class RequestLeavingBodiesToDjango(WebRequest):  # type: ignore[misc]  # daphne is untyped
    """Daphne's request, without Twisted's parsing of form bodies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)


class LiveHTTPFactory(HTTPFactory):  # type: ignore[misc]  # daphne is untyped
    """Daphne's HTTP factory, building requests that leave their bodies to Django."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        if protocol is not None:
            protocol.requestFactory = RequestLeavingBodiesToDjango
        return protocol


class WebSocketFailingByClose(WebSocketProtocol):  # type: ignore[misc]  # daphne is untyped
    """Daphne's protocol, telling the application the code it failed a connection with rather
    than the code of the client's reply (or 1006 when the client did not reply)."""

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.failedByMe and self.localCloseCode is not None:
            code = self.localCloseCode
        super().onClose(wasClean, code, reason)


class LiveServer(Server):  # type: ignore[misc]  # daphne is untyped
    """Daphne's server; its WebSocket factory fails connections by a close frame, and its HTTP
    factory leaves request bodies to Django.

    ``Server.run`` builds the factories and sets their options in one go, then starts the
    reactor: they are adopted here, as they are assigned, since there is no hook in between.
    """

    @property
    def http_factory(self) -> HTTPFactory:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        # daphne builds a plain HTTPFactory(self), which holds nothing else yet: build ours.
        self._http_factory = (
            factory if isinstance(factory, LiveHTTPFactory) else LiveHTTPFactory(self)
        )

    @property
    def ws_factory(self) -> WebSocketFactory:
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: WebSocketFactory) -> None:
        factory.protocol = WebSocketFailingByClose
        factory.setProtocolOptions(failByDrop=False)
        self._ws_factory = factory


class LiveCommandLineInterface(CommandLineInterface):  # type: ignore[misc]  # daphne is untyped
    server_class = LiveServer


def main(argv: list[str] | None = None) -> None:
    """Daphne's command line (``argv``, default ``sys.argv[1:]``), with this server."""
    LiveCommandLineInterface().run(argv)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
