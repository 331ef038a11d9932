"""The web server's WebSocket factory, in process. What a client sees (1009, 1007, 1002 close
frames from a real daphne process) is in ``test_ws_limits.py``."""

from __future__ import annotations

from daphne.ws_protocol import WebSocketFactory

from tradingbot.live.daphne_server import LiveServer, WebSocketFailingByClose


def test_the_factory_daphne_builds_fails_connections_by_a_close_frame() -> None:
    # given
    server = LiveServer(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    # when: daphne's Server.run builds its factory and sets the options of its command line
    server.ws_factory = WebSocketFactory(server, server="daphne")
    server.ws_factory.setProtocolOptions(maxMessagePayloadSize=1024, maxFramePayloadSize=1024)
    # then: autobahn fails a connection with a close frame, not by dropping the TCP
    assert server.ws_factory.failByDrop is False
    assert server.ws_factory.protocol is WebSocketFailingByClose
    assert server.ws_factory.maxMessagePayloadSize == 1024


def test_plain_daphne_would_drop_the_connection() -> None:
    # given: the default this server exists to change
    factory = WebSocketFactory(None, server="daphne")
    # then
    assert factory.failByDrop is True
