from django.apps import AppConfig


class TradingbotConfig(AppConfig):
    name = "tradingbot"
    verbose_name = "Platform"

    def ready(self) -> None:
        from tradingbot.daphne_bodies import leave_request_bodies_to_django

        leave_request_bodies_to_django()
