from __future__ import annotations

from celery import shared_task

from accounts import delivery, services, summaries


@shared_task(name="accounts.tasks.cleanup_expired_auth_task", ignore_result=True)
def cleanup_expired_auth_task() -> dict[str, int]:
    """Hourly (beat): delete expired sessions and API tokens."""
    return services.auth_cleanup_expired()


@shared_task(name="accounts.tasks.deliver_channel_task", ignore_result=True)
def deliver_channel_task(channel_id: int) -> str:
    """Send a channel's due notifications (one batched message)."""
    return delivery.channel_deliver(channel_id=channel_id)


@shared_task(name="accounts.tasks.deliver_due_notifications_task", ignore_result=True)
def deliver_due_notifications_task() -> int:
    """Minutely (beat): re-send the delivery task of every channel with due notifications."""
    return delivery.deliver_due()


@shared_task(name="accounts.tasks.send_daily_summaries_task", ignore_result=True)
def send_daily_summaries_task() -> int:
    """Minutely (beat): the daily summaries whose time has come, once a day per channel."""
    return summaries.daily_summaries_send()


@shared_task(name="accounts.tasks.send_system_alerts_task", ignore_result=True)
def send_system_alerts_task() -> list[str]:
    """Minutely (beat): run the system checks; a new incident is told to staff once."""
    return summaries.system_alerts_send()
