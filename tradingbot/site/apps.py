from django.apps import AppConfig


class SiteConfig(AppConfig):
    """The composition layer: the URL root, the dashboard, the staff overview on the admin's
    front page, the smoke check and the demo seed. It may import every app; nothing imports it."""

    name = "tradingbot.site"
    label = "site"
    verbose_name = "Site"
