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
"""

from __future__ import annotations

# daphne.server installs the asyncio Twisted reactor: it is imported before anything Twisted.
from daphne.server import Server  # isort: skip
from daphne.cli import CommandLineInterface
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol


class WebSocketFailingByClose(WebSocketProtocol):  # type: ignore[misc]  # daphne is untyped
    """Daphne's protocol, telling the application the code it failed a connection with rather
    than the code of the client's reply (or 1006 when the client did not reply)."""

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.failedByMe and self.localCloseCode is not None:
            code = self.localCloseCode
        super().onClose(wasClean, code, reason)


class LiveServer(Server):  # type: ignore[misc]  # daphne is untyped
    """Daphne's server; its WebSocket factory fails connections by a close frame.

    ``Server.run`` builds the factory and sets its options in one go, then starts the reactor:
    the factory is adopted here, as it is assigned, since there is no hook in between.
    """

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
