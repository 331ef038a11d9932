"""ASGI entry point served by daphne: HTTP through Django, WebSocket through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")

# Django must be set up before anything imports models (consumers, auth middleware).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from tradingbot.proxy import TrustedProxyMiddleware  # noqa: E402
from tradingbot.routing import websocket_urlpatterns  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """Refuse a WebSocket whose Origin is not one of ALLOWED_HOSTS (another site's page riding
    on the trader's session cookie). A browser always sends Origin on a WebSocket; a handshake
    without one is not from a page, and authenticates like any API client."""

    def valid_origin(self, parsed_origin: object) -> bool:
        if parsed_origin is None:
            return True
        return bool(super().valid_origin(parsed_origin))


def allowed_origins() -> list[str]:
    # As channels' AllowedHostsOriginValidator: ALLOWED_HOSTS, plus local hosts under DEBUG.
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


# Outermost, so that Django, the origin check and the consumers all see the client's address and
# scheme as resolved from trusted proxies only (TRUSTED_PROXIES; daphne runs without
# --proxy-headers).
application = TrustedProxyMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": BrowserOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), allowed_origins()
            ),
        }
    )
)
