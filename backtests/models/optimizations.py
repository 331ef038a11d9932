"""Optimisations: an Optuna study of one strategy's parameters, its trials run by every worker.

An :class:`Optimization` is a period run whose parameters are searched rather than given: its
``space`` (see :mod:`backtests.search_space`), one objective or several, a sampler and a number
of trials. The study itself lives in Optuna's storage (``backtests.services.studies``), which
coordinates the workers; each trial is also recorded here as an :class:`OptimizationTrial`, the
owner-scoped record the API, the pages and the best result are read from.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from backtests.models.runs import PeriodRun


class TrialState(models.TextChoices):
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"  # skipped: the strategy rejects the combination, or its value is undefined
    FAILED = "failed"


class Optimization(PeriodRun):
    """A search of ``space`` for the best ``objectives`` over ``trial_count`` trials.

    ``params`` holds the parameters fixed for every trial (those not in the space).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="optimizations"
    )
    space = models.JSONField(help_text="{param: {low, high, step, log} | {choices}}")
    objectives = models.JSONField(help_text="[{metric: weight}, ...]: maximised, one or several")
    min_trades = models.PositiveIntegerField(
        default=1, help_text="A trial with fewer trades is infeasible (never the best)"
    )
    sampler = models.CharField(max_length=8)
    seed = models.BigIntegerField(null=True, blank=True)
    trial_count = models.PositiveIntegerField(help_text="Trials to run")
    claimed_count = models.PositiveIntegerField(default=0, help_text="Trials started so far")
    done_count = models.PositiveIntegerField(default=0)
    pruned_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    best_trial = models.PositiveIntegerField(null=True, blank=True, help_text="Its number")
    best_params = models.JSONField(null=True, blank=True)
    best_value = models.FloatField(null=True, blank=True, help_text="The first objective's")
    best_metrics = models.JSONField(null=True, blank=True)
    pareto = models.JSONField(
        default=list, blank=True, help_text="Several objectives: the Pareto front's trial numbers"
    )
    importances = models.JSONField(
        default=dict, blank=True, help_text="{param: importance share (PED-ANOVA), summing to 1}"
    )
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task messages were last sent"
    )

    class Meta:
        db_table = "optimizations"
        ordering = ("-created_at", "-id")
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("user", "-created_at"), name="optimization_user_recent"),
            models.Index(fields=("status", "heartbeat_at"), name="optimization_status_heartbeat"),
        ]
        constraints: ClassVar[list[Any]] = [
            models.CheckConstraint(
                condition=Q(start__lt=models.F("end")), name="optimization_period"
            ),
            models.CheckConstraint(
                condition=Q(claimed_count__lte=models.F("trial_count")),
                name="optimization_claimed_trials",
            ),
        ]

    def __str__(self) -> str:
        return f"Optimization {self.pk} {self.strategy_id} {self.market_label} ({self.status})"

    @property
    def study_name(self) -> str:
        """Unique even if ids come round again (a database restored or reset beside a storage
        that kept its studies)."""
        return f"optimization-{self.pk}-{int(self.created_at.timestamp() * 1_000_000)}"

    @property
    def finished_count(self) -> int:
        return self.done_count + self.pruned_count + self.failed_count

    @property
    def progress(self) -> float:
        return self.finished_count / self.trial_count if self.trial_count else 0.0

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1


class OptimizationTrial(models.Model):
    """One trial of an optimisation, as its worker recorded it (``number`` is Optuna's)."""

    State = TrialState

    optimization = models.ForeignKey(Optimization, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    params = models.JSONField(help_text="The full parameters the trial ran with")
    state = models.CharField(max_length=10, choices=TrialState.choices)
    value = models.FloatField(null=True, blank=True, help_text="The first objective")
    values = models.JSONField(null=True, blank=True, help_text="Every objective, in order")
    feasible = models.BooleanField(default=True, help_text="At least min_trades trades")
    metrics = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "optimization_trials"
        ordering = ("optimization", "number")
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=("optimization", "number"), name="optimization_trial_number"
            ),
        ]

    def __str__(self) -> str:
        return f"Optimization {self.optimization_id} trial {self.number} ({self.state})"
