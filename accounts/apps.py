from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        """Connect the receivers, and tell the live connection how an API token is checked."""
        from accounts import (
            signals,  # noqa: F401 - connects the receivers
            summaries,
            system_checks,
        )
        from accounts.services import api_token_holder
        from tradingbot.live import channels

        channels.register_token_check(api_token_holder)
        summaries.register_system_check("workers_down", system_checks.workers_down)
        summaries.register_system_check("queue_backlog", system_checks.queue_backlog)
