"""The catalogue of strategies in the database, kept in step with the code's registry."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from strategies.base import Strategy as StrategyClass
from strategies.models import Strategy
from strategies.params import StrategyParamError
from strategies.registry import active
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)


@transaction.atomic
def strategy_catalogue_sync() -> dict[str, int]:
    """Upsert a row per registered strategy; mark rows the code no longer has as unavailable.

    ``enabled`` is staff's decision and is never changed here.
    """
    registry = active()
    seen = []
    created = 0
    for cls in registry.all():
        schema = cls.schema()
        _, was_created = Strategy.objects.update_or_create(
            key=schema["key"],
            defaults={
                "name": schema["name"],
                "description": schema["description"],
                "params_schema": schema["params"],
                "available": True,
            },
        )
        created += was_created
        seen.append(schema["key"])
    gone = Strategy.objects.exclude(key__in=seen).update(available=False)
    logger.info(
        "strategies.synced", extra=context(registered=len(seen), new=created, unavailable=gone)
    )
    return {"registered": len(seen), "created": created, "unavailable": gone}


def sync_catalogue_after_migrate(**_kwargs: Any) -> None:
    strategy_catalogue_sync()


def usable_strategy(key: str) -> type[StrategyClass]:
    """The strategy class for ``key``; it must be registered and not disabled by staff."""
    registry = active()
    row = Strategy.objects.filter(key=key).first()
    if key not in registry or row is None:
        raise AppError(
            "unknown_strategy",
            f"Unknown strategy {key!r}.",
            details={"strategy": [f"known strategies: {', '.join(registry.keys())}"]},
        )
    if not (row.enabled and row.available):
        raise AppError(
            "strategy_disabled",
            f"The strategy {key!r} is disabled.",
            details={"strategy": ["staff have disabled this strategy"]},
        )
    return registry.get(key)


def validated_params(
    strategy: type[StrategyClass], params: Mapping[str, Any] | None
) -> dict[str, Any]:
    try:
        return strategy.validate(params)
    except StrategyParamError as exc:
        raise AppError(
            "invalid_params", "The strategy parameters are invalid.", details=exc.errors
        ) from None
