from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"
    verbose_name = "Bots"

    def ready(self) -> None:
        """Offer ``bot:<id>`` on the live connection, stop a disabled user's bots, and show the
        bots by status on ``/metrics``."""
        from accounts import summaries
        from accounts.signals import user_disabled
        from bots.events import bot_snapshot
        from bots.selectors import bots_by_status
        from bots.services.notices import daily_summary_lines, exchange_error_spike
        from bots.signals import stop_the_disabled_users_bots
        from tradingbot import metrics
        from tradingbot.live import channels

        channels.register_object_channel("bot", snapshot=bot_snapshot)
        summaries.register_summary_part(daily_summary_lines)
        summaries.register_system_check("exchange_errors", exchange_error_spike)
        user_disabled.connect(stop_the_disabled_users_bots, dispatch_uid="bots.user_disabled")
        metrics.register_gauge(
            "tradingbot_bots", "Bots by status, over every user.", labels=["status"],
            read=bots_by_status,
        )  # fmt: skip
