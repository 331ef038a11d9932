"""WebSocket routes. The live-updates consumer (``/ws/``) is added by the live-updates work."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
