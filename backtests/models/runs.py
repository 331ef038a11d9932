"""Backtests, parameter sweeps and backtest schedules, and what every kind of run shares.

A :class:`Backtest` is one run of one strategy configuration over a period of stored candles; its
trades are rows of :class:`BacktestTrade` (paged and filtered by the API), its equity curve a
thinned JSON list (always read whole, for a chart). A :class:`Sweep` runs one configuration per
combination of a parameter grid, each a :class:`SweepRun` holding metrics only. A
:class:`BacktestSchedule` is a saved configuration that beat re-runs on the last N days; its runs
are ordinary backtests pointing back at it, which is its history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django_celery_beat.models import PeriodicTask

from backtests.engine import BacktestSettings
from backtests.spec import RunSpec
from markets.timeframes import TIMEFRAMES

MONEY: dict[str, Any] = {"max_digits": 28, "decimal_places": 12}
RATE: dict[str, Any] = {"max_digits": 12, "decimal_places": 8}


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MarginMode(models.TextChoices):
    """How a perp position is margined; only isolated is simulated (cross: not yet)."""

    ISOLATED = "isolated"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
# The simulated account's fields of RunConfig, and all of its fields, as stored.
ACCOUNT_FIELDS = (
    "initial_cash",
    "fee_rate",
    "slippage_bps",
    "position_size",
    "stop_loss",
    "take_profit",
    "leverage",
    "margin_mode",
)
CONFIG_FIELDS = ("strategy_id", "params", "exchange", "symbol", "timeframe", *ACCOUNT_FIELDS)


class RunConfig(models.Model):
    """What to simulate and how the simulated account trades: shared by every kind of run."""

    strategy = models.ForeignKey(
        "strategies.Strategy", on_delete=models.PROTECT, related_name="+", to_field="key"
    )
    params = models.JSONField(default=dict, help_text="Validated strategy parameters")
    exchange = models.CharField(max_length=32)
    symbol = models.CharField(max_length=40)
    timeframe = models.CharField(max_length=4, choices=[(t, t) for t in TIMEFRAMES])
    initial_cash = models.DecimalField(**MONEY)
    fee_rate = models.DecimalField(**RATE, help_text="Fee per side, 0.001 = 0.1 %")
    slippage_bps = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    position_size = models.DecimalField(**RATE, default=1, help_text="Fraction of equity")
    stop_loss = models.DecimalField(**RATE, null=True, blank=True, help_text="0.02 = 2 %")
    take_profit = models.DecimalField(**RATE, null=True, blank=True, help_text="0.04 = 4 %")
    leverage = models.PositiveSmallIntegerField(
        default=1, help_text="Perpetual swaps: 1 to the market's maximum; always 1 on spot"
    )
    margin_mode = models.CharField(
        max_length=8, choices=MarginMode.choices, default=MarginMode.ISOLATED
    )

    class Meta:
        abstract = True

    def engine_settings(self, **perp_terms: Any) -> BacktestSettings:
        """The account settings as the engine takes them (floats); on a perp market with the
        market's ``perp_terms`` (``perp=True``, ``maintenance_margin_rate``)."""
        return BacktestSettings(
            initial_cash=float(self.initial_cash),
            fee_rate=float(self.fee_rate),
            slippage_bps=float(self.slippage_bps),
            position_size=float(self.position_size),
            stop_loss=None if self.stop_loss is None else float(self.stop_loss),
            take_profit=None if self.take_profit is None else float(self.take_profit),
            leverage=float(self.leverage),
            margin_mode=self.margin_mode,
            **perp_terms,
        )

    @property
    def is_perp(self) -> bool:
        """A perpetual swap: ccxt writes a contract market's symbol with its settle currency
        (``BTC/USDT:USDT``)."""
        return ":" in self.symbol

    @property
    def market_label(self) -> str:
        return f"{self.exchange} {self.symbol} {self.timeframe}"

    def run_spec(self) -> RunSpec:
        """This configuration as the create services take it."""
        return RunSpec(
            strategy=self.strategy_id, **{f: getattr(self, f) for f in CONFIG_FIELDS[1:]}
        )


class BacktestSchedule(RunConfig):
    """A saved configuration that beat runs on a cron schedule over the last ``lookback_days``."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtest_schedules"
    )
    name = models.CharField(max_length=100)
    lookback_days = models.PositiveIntegerField(help_text="Each run covers the last N days")
    cron = models.CharField(
        max_length=100, help_text="minute hour day-of-month month day-of-week, in UTC"
    )
    enabled = models.BooleanField(default=True)
    # Beat's own row: created, updated and deleted with the schedule by the services.
    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "backtest_schedules"
        ordering = ("-created_at",)
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("user", "name"), name="backtest_schedule_name"),
            models.CheckConstraint(
                condition=Q(lookback_days__gte=1), name="backtest_schedule_lookback"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron})"


class PeriodRun(RunConfig):
    """A run of a configuration over the candles opened in [start, end), by the workers: what
    backtests and sweeps share."""

    Status = RunStatus

    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    candle_count = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def start_ms(self) -> int:
        return epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return epoch_ms(self.end)


class Backtest(PeriodRun):
    """One run of a strategy over the candles opened in [start, end)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtests"
    )
    progress = models.FloatField(default=0.0, help_text="0..1")
    metrics = models.JSONField(null=True, blank=True)
    equity = models.JSONField(
        default=list, blank=True, help_text="[[time_ms, equity], ...], thinned for charts"
    )
    trade_count = models.PositiveIntegerField(default=0)
    schedule = models.ForeignKey(
        BacktestSchedule, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task message was last sent"
    )
    worker = models.CharField(max_length=200, blank=True, help_text="Worker of the last attempt")
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        db_table = "backtests"
        ordering = ("-created_at", "-id")
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("user", "-created_at"), name="backtest_user_recent"),
            models.Index(fields=("status", "heartbeat_at"), name="backtest_status_heartbeat"),
        ]
        constraints: ClassVar[list[Any]] = [
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="backtest_period"),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="backtest_progress"
            ),
        ]

    def __str__(self) -> str:
        return f"Backtest {self.pk} {self.strategy_id} {self.market_label} ({self.status})"


class BacktestTrade(models.Model):
    """One round trip of a backtest, as the engine booked it (times are candle open times)."""

    class Side(models.TextChoices):
        LONG = "long"
        SHORT = "short"

    class ExitReason(models.TextChoices):
        SIGNAL = "signal"
        STOP_LOSS = "stop_loss"
        TAKE_PROFIT = "take_profit"
        END = "end"
        LIQUIDATION = "liquidation"

    backtest = models.ForeignKey(Backtest, on_delete=models.CASCADE, related_name="trades")
    seq = models.PositiveIntegerField(help_text="0-based order of the trade in its backtest")
    side = models.CharField(max_length=5, choices=Side.choices)
    entry_time = models.BigIntegerField(help_text="Entry candle open time, epoch ms UTC")
    exit_time = models.BigIntegerField(help_text="Exit candle open time, epoch ms UTC")
    qty = models.DecimalField(**MONEY)
    entry_price = models.DecimalField(**MONEY)
    exit_price = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, help_text="Both sides")
    pnl = models.DecimalField(**MONEY, help_text="Net of both fees and of the funding")
    return_rate = models.FloatField(help_text="pnl / margin (the entry notional / leverage)")
    exit_reason = models.CharField(max_length=12, choices=ExitReason.choices)
    leverage = models.PositiveSmallIntegerField(default=1)
    funding = models.DecimalField(
        **MONEY, default=0, help_text="Funding received (negative: paid) while open, in quote"
    )

    class Meta:
        db_table = "backtest_trades"
        ordering = ("backtest", "seq")
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("backtest", "seq"), name="backtest_trade_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} @ {self.entry_price} → {self.exit_price}"


class Sweep(PeriodRun):
    """A grid of parameter combinations of one strategy, each run as a :class:`SweepRun`.

    ``params`` holds the parameters shared by every combination (those not in the grid).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sweeps"
    )
    grid = models.JSONField(help_text="{param: [values, ...]}, as expanded from the request")
    rank_by = models.CharField(max_length=32)
    combination_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(
        default=0, help_text="Grid combinations the strategy rejects (e.g. fast >= slow)"
    )
    done_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "sweeps"
        ordering = ("-created_at", "-id")
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=("user", "-created_at"), name="sweep_user_recent"),
            models.Index(fields=("status", "heartbeat_at"), name="sweep_status_heartbeat"),
        ]
        constraints: ClassVar[list[Any]] = [
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="sweep_period"),
        ]

    def __str__(self) -> str:
        return f"Sweep {self.pk} {self.strategy_id} {self.market_label} ({self.status})"

    @property
    def progress(self) -> float:
        finished = self.done_count + self.failed_count
        return finished / self.combination_count if self.combination_count else 0.0


class SweepRun(models.Model):
    """One combination of a sweep: its full parameters and, once run, its metrics."""

    Status = RunStatus

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="runs")
    seq = models.PositiveIntegerField()
    params = models.JSONField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    metrics = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sweep_runs"
        ordering = ("sweep", "seq")
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=("sweep", "seq"), name="sweep_run_seq"),
        ]

    def __str__(self) -> str:
        return f"Sweep {self.sweep_id} #{self.seq} {self.params} ({self.status})"


def epoch_ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)
