"""Walk-forwards: an optimisation per window, each window's best parameters run on the days
after it, and the out-of-sample results stitched together.

A :class:`WalkForward` is a period run whose search is an optimisation's (``space``,
``objectives``, sampler, trials per window); its :class:`WalkForwardWindow` rows each point at
an ordinary :class:`~backtests.models.Optimization` of their in-sample period, which the
workers run like any other. The arithmetic (windows, stitching, the overfitting ratio) is in
:mod:`backtests.walk_forward`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from backtests.models.optimizations import Optimization
from backtests.models.runs import ACTIVE_STATUSES, PeriodRun, RunStatus


class WalkForward(PeriodRun):
    """Windows of in-sample optimisation and out-of-sample test over ``[start, end)``.

    ``params`` holds the parameters fixed for every trial (those not in the space). The results
    (``metrics``, ``equity``, ``trade_count``) are those of the stitched out-of-sample run.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="walk_forwards"
    )
    space = models.JSONField(help_text="{param: {low, high, step, log} | {choices}}")
    objectives = models.JSONField(help_text="[{metric: weight}, ...]: maximised, one or several")
    min_trades = models.PositiveIntegerField(
        default=1, help_text="An in-sample trial with fewer trades is never a window's best"
    )
    sampler = models.CharField(max_length=8)
    seed = models.BigIntegerField(null=True, blank=True)
    trials_per_window = models.PositiveIntegerField()
    in_sample_days = models.PositiveIntegerField()
    out_of_sample_days = models.PositiveIntegerField()
    window_count = models.PositiveSmallIntegerField()
    anchored = models.BooleanField(
        default=False, help_text="In-sample periods all start at start (else they roll)"
    )
    trial_count = models.PositiveIntegerField(default=0, help_text="Of every window together")
    trials_finished = models.PositiveIntegerField(default=0)
    windows_done = models.PositiveSmallIntegerField(default=0)
    metrics = models.JSONField(null=True, blank=True, help_text="Of the stitched out-of-sample run")
    equity = models.JSONField(
        default=list, blank=True, help_text="[[time_ms, equity], ...] stitched, thinned for charts"
    )
    trade_count = models.PositiveIntegerField(default=0)
    in_sample_return = models.FloatField(
        null=True, blank=True, help_text="Mean annualised return of the windows' best trials"
    )
    out_of_sample_return = models.FloatField(
        null=True, blank=True, help_text="Annualised return of the stitched out-of-sample run"
    )
    overfitting_ratio = models.FloatField(
        null=True,
        blank=True,
        help_text="out_of_sample_return / in_sample_return; null when in-sample ≤ 0",
    )

    class Meta:
        db_table = "walk_forwards"
        verbose_name = "walk-forward"
        ordering = ("-created_at", "-id")
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("user", "-created_at"), name="walk_forward_user_recent"),
            models.Index(fields=("status", "heartbeat_at"), name="walk_forward_status_heartbeat"),
        ]
        constraints: ClassVar[list[Any]] = [
            models.CheckConstraint(
                condition=Q(start__lt=models.F("end")), name="walk_forward_period"
            ),
            models.CheckConstraint(
                condition=Q(window_count__gte=1), name="walk_forward_window_count"
            ),
        ]

    def __str__(self) -> str:
        return f"Walk-forward {self.pk} {self.strategy_id} {self.market_label} ({self.status})"

    @property
    def progress(self) -> float:
        """Trials finished and out-of-sample runs done, over all there are (0..1)."""
        total = self.trial_count + self.window_count
        return min(1.0, (self.trials_finished + self.windows_done) / total) if total else 0.0


class WalkForwardWindow(models.Model):
    """One window: its optimisation (the in-sample period) and the out-of-sample run of the
    best parameters it found. The results are copied here, so they outlive the optimisation.

    ``queued`` while its optimisation runs, ``running`` during the out-of-sample run.
    """

    Status = RunStatus

    walk_forward = models.ForeignKey(WalkForward, on_delete=models.CASCADE, related_name="windows")
    index = models.PositiveSmallIntegerField(help_text="0-based, in time order")
    in_sample_start = models.DateTimeField()
    in_sample_end = models.DateTimeField()
    out_of_sample_start = models.DateTimeField()
    out_of_sample_end = models.DateTimeField()
    optimization = models.OneToOneField(
        Optimization,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="walk_forward_window",
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    params = models.JSONField(null=True, blank=True, help_text="The best in-sample parameters")
    in_sample_value = models.FloatField(null=True, blank=True, help_text="The first objective's")
    in_sample_metrics = models.JSONField(null=True, blank=True, help_text="The best trial's")
    out_of_sample_metrics = models.JSONField(null=True, blank=True)
    out_of_sample_candles = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "walk_forward_windows"
        verbose_name = "walk-forward window"
        ordering = ("walk_forward", "index")
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("walk_forward", "index"), name="walk_forward_window"),
        ]

    def __str__(self) -> str:
        return f"Walk-forward {self.walk_forward_id} window {self.index} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES
