from django.apps import AppConfig


class TradingbotConfig(AppConfig):
    name = "tradingbot"
    verbose_name = "Platform"
