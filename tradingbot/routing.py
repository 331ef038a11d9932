"""WebSocket routes: the one live-updates endpoint."""

from django.urls import path

from tradingbot.live.consumers import LiveConsumer

websocket_urlpatterns = [path("ws/", LiveConsumer.as_asgi())]
