from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "markets"
    verbose_name = "Markets and exchange accounts"

    def ready(self) -> None:
        """Offer ``candles:<exchange>:<symbol>:<timeframe>`` on the live connection."""
        from markets.events import CANDLES, candles_snapshot
        from markets.timeframes import TIMEFRAMES
        from tradingbot.live import channels

        channels.register_market_channel(CANDLES, timeframes=TIMEFRAMES, snapshot=candles_snapshot)
