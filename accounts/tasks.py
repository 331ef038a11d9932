from __future__ import annotations

from celery import shared_task

from accounts import services


@shared_task(name="accounts.tasks.cleanup_expired_auth_task", ignore_result=True)
def cleanup_expired_auth_task() -> dict[str, int]:
    """Hourly (beat): delete expired sessions and API tokens."""
    return services.auth_cleanup_expired()
