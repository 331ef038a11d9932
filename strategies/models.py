from __future__ import annotations

from django.db import models


class Strategy(models.Model):
    """The catalogue entry of a registered strategy, synced from the code's registry.

    The code is the source of truth for what a strategy does and takes; this row is what staff
    manage (``enabled``) and what other tables point at.
    """

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    params_schema = models.JSONField(default=list)
    enabled = models.BooleanField(
        default=True, help_text="Disabled strategies cannot be used for new bots or backtests"
    )
    available = models.BooleanField(
        default=True, help_text="False when the code no longer registers this key"
    )
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "strategies"
        ordering = ("key",)
        verbose_name_plural = "strategies"

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"
