from django.apps import AppConfig
from django.db.models.signals import post_migrate


class StrategiesConfig(AppConfig):
    name = "strategies"
    verbose_name = "Strategies"

    def ready(self) -> None:
        """Load the registry once per process; a broken STRATEGY_MODULES entry stops start-up
        here with ``StrategyLoadError`` naming the module (never a half-working registry)."""
        from django.conf import settings

        from strategies.registry import load_registry
        from strategies.services import sync_catalogue_after_migrate

        load_registry(settings.STRATEGY_MODULES)
        post_migrate.connect(sync_catalogue_after_migrate, sender=self)
