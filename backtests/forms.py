"""Forms of the backtest, sweep and schedule pages.

A page must accept and refuse what the API accepts and refuses, so the forms reuse its checks:

- the run specification goes through the API's own input serializers (``RunSpecInput`` and its
  extensions), whose messages are attached to the fields;
- a strategy's parameters are fields made from its declarations (``strategies.forms``), and
  their values are checked by the strategy itself (``Strategy.validate``), worded as the API
  words it;
- the rest (symbol, period, grid, quota) is the services' business: the view hands their
  :class:`~tradingbot.errors.AppError` to :meth:`RunSpecForm.attach_error`.

Stop-loss and take-profit are typed in percent (``2`` = 2 %), as on the bot form; the API and
the database take fractions, so the form divides by 100.

Parameter fields are named ``param_<name>``. A form is built for one strategy; the pages switch
strategy by posting the form back with ``switch_strategy`` (nothing is created then).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from django import forms

from backtests.api.backtests import BacktestInput
from backtests.api.common import EXCHANGE_CHOICES, RunSpecInput
from backtests.api.schedules import ScheduleInput
from backtests.api.sweeps import SweepInput
from backtests.metrics import RANKABLE_METRICS
from backtests.models import ACCOUNT_FIELDS
from backtests.services.schedules import MAX_LOOKBACK_DAYS
from backtests.templatetags.backtests_format import METRICS
from markets.timeframes import TIMEFRAMES, timeframe_ms
from strategies.base import Strategy
from strategies.forms import param_field, percent_field, strategy_values
from strategies.models import Strategy as StrategyRow
from strategies.params import NON_FIELD, StrategyParamError
from tradingbot.errors import AppError

PARAM_PREFIX = "param_"
SWITCH_STRATEGY = "switch_strategy"
DEFAULT_PERIOD = timedelta(days=30)
LEVELS = ("stop_loss", "take_profit")
# A level's percent has two decimals fewer than its stored fraction (8): nothing is lost.
LEVEL_DECIMALS = 6


def _number_field(label: str, help_text: str = "", *, required: bool = True) -> forms.CharField:
    """A number typed as text: the serializer parses it, so its messages are the API's."""
    return forms.CharField(
        label=label,
        help_text=help_text,
        required=required,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )


def _datetime_field(label: str, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        help_text=help_text,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


def percent_of(fraction: float | Decimal | None) -> str | None:
    """A stored fraction as its form shows it: ``0.05`` → ``"5"``."""
    if fraction is None:
        return None
    return format((Decimal(str(fraction)) * 100).normalize(), "f")


ACCOUNT_GROUP = ("Simulated account", ACCOUNT_FIELDS)
MARKET_AND_PERIOD = ("Market and period", ("exchange", "symbol", "timeframe", "start", "end"))


class RunSpecForm(forms.Form):
    """What to simulate and how the simulated account trades (a RunSpec), for one strategy."""

    serializer_class: ClassVar[type[RunSpecInput]] = RunSpecInput
    # Form fields that are not the serializer's (the parameters are added per strategy).
    own_fields: ClassVar[tuple[str, ...]] = ()
    # The page's fieldsets; the strategy's parameters come before the last one.
    groups: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("Market", ("exchange", "symbol", "timeframe")),
        ACCOUNT_GROUP,
    )
    params_legend = "Strategy parameters"
    grid = False  # one value per parameter, or several (a sweep)

    strategy = forms.ChoiceField()
    exchange = forms.ChoiceField(choices=EXCHANGE_CHOICES)
    symbol = forms.CharField(
        max_length=40,
        help_text="As the exchange writes it: BTC/USDT",
        widget=forms.TextInput(attrs={"list": "stored-symbols", "autocomplete": "off"}),
    )
    timeframe = forms.ChoiceField(choices=[(tf, tf) for tf in TIMEFRAMES])
    initial_cash = _number_field("Initial cash", "In the quote currency (USDT for BTC/USDT)")
    fee_rate = _number_field("Fee rate", "Per side: 0.001 = 0.1 %")
    slippage_bps = _number_field(
        "Slippage (bps)", "Price slippage per fill, in basis points", required=False
    )
    position_size = _number_field(
        "Position size", "Fraction of equity per position, in (0, 1]", required=False
    )
    stop_loss = percent_field(
        "Stop loss %",
        "Below the entry price (above it for a short): 2 = 2 %; empty = none",
        max_value=Decimal("99.999999"),
        decimal_places=LEVEL_DECIMALS,
    )
    take_profit = percent_field(
        "Take profit %",
        "Above the entry price (below it for a short): 4 = 4 %; empty = none",
        max_value=Decimal(1000),
        decimal_places=LEVEL_DECIMALS,
    )
    leverage = _number_field(
        "Leverage", "Perpetual swaps (BTC/USDT:USDT): 1 to the market's maximum", required=False
    )
    margin_mode = forms.ChoiceField(
        choices=[("isolated", "Isolated")],
        initial="isolated",
        required=False,
        help_text="Perpetual swaps: each position margined on its own (cross: not yet)",
    )

    def __init__(
        self,
        data: Any = None,
        *,
        strategies: list[StrategyRow],
        strategy: type[Strategy] | None,
        initial: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(data, initial=initial)
        self.strategy_class = strategy
        self.validated: dict[str, Any] = {}
        strategy_field = self.fields["strategy"]
        assert isinstance(strategy_field, forms.ChoiceField)
        strategy_field.choices = [(row.key, row.name) for row in strategies]
        self._copy_bounds()
        if strategy is not None:
            self._add_strategy(strategy)

    def _add_strategy(self, strategy: type[Strategy]) -> None:
        """The strategy's defaults and one field per parameter (bounds left to the strategy)."""
        self.fields["strategy"].initial = strategy.key
        self.fields["stop_loss"].initial = percent_of(strategy.stop_loss)
        self.fields["take_profit"].initial = percent_of(strategy.take_profit)
        for param in strategy.params:
            field = param_field(param, grid=self.grid, check_bounds=False)
            self.fields[PARAM_PREFIX + param.name] = field

    def _copy_bounds(self) -> None:
        """The serializer's bounds as the text inputs' ``min``/``max`` (a hint: the server
        decides)."""
        declared = self.serializer_class().fields
        for name, field in self.fields.items():
            if not isinstance(field, forms.CharField) or name not in declared:
                continue
            for attr in ("min_value", "max_value"):
                bound = getattr(declared[name], attr, None)
                if bound is not None and isinstance(field.widget, forms.NumberInput):
                    field.widget.attrs[attr[:3]] = str(bound)

    # --- the parameters ----------------------------------------------------------------------

    @property
    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(PARAM_PREFIX)]

    @property
    def strategy_description(self) -> str:
        return self.strategy_class.description if self.strategy_class is not None else ""

    @property
    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        """``(legend, fields)`` in page order, the parameters before the account."""
        sets = [(legend, [self[name] for name in names]) for legend, names in self.groups]
        if self.param_fields:
            sets.insert(len(sets) - 1, (self.params_legend, self.param_fields))
        return sets

    def field_for(self, key: str) -> str | None:
        """The form field an error about ``key`` belongs to (None: the whole form)."""
        if key in self.fields:
            return key
        if PARAM_PREFIX + key in self.fields:
            return PARAM_PREFIX + key
        return None

    def given_params(self) -> dict[str, Any]:
        """The parameter fields' clean values by parameter name (refused ones left out)."""
        assert self.strategy_class is not None
        names = [param.name for param in self.strategy_class.params]
        return {
            name: self.cleaned_data[PARAM_PREFIX + name]
            for name in names
            if PARAM_PREFIX + name in self.cleaned_data
        }

    def param_values(self) -> dict[str, Any] | None:
        """The parameters, checked by the strategy (None, with field errors, when invalid)."""
        assert self.strategy_class is not None
        try:
            return strategy_values(self.strategy_class, self.given_params())
        except StrategyParamError as exc:
            for key, messages in exc.errors.items():
                self.add_error(self.field_for(key) if key != NON_FIELD else None, messages)
            return None

    # --- the specification, through the API's serializer --------------------------------------

    def serializer_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        declared: Mapping[str, Any] = self.serializer_class().fields
        for name in declared:
            if name not in self.cleaned_data or name in self.own_fields:
                continue
            value = self.cleaned_data[name]
            if name in LEVELS:
                data[name] = None if value is None else value / 100  # empty means "none"
            elif value not in (None, ""):
                data[name] = value
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        extra = self.extra_values() if self.strategy_class is not None else None
        declared = self.serializer_class().fields
        # The parameters (and a sweep's grid) are checked by the strategy and the services.
        placeholders: dict[str, dict[str, Any]] = {
            name: {} for name in ("params", "grid") if name in declared
        }
        serializer = self.serializer_class(data={**self.serializer_data(), **placeholders})
        if not serializer.is_valid():
            for name, messages in serializer.errors.items():
                if name in self.fields and name not in self.errors:
                    self.add_error(name, [str(message) for message in messages])
                elif name not in self.fields:
                    self.add_error(None, [f"{name}: {message}" for message in messages])
        elif extra is not None and not self.errors:
            self.validated = {**serializer.validated_data, **extra}
        return cleaned

    def extra_values(self) -> dict[str, Any] | None:
        """What the form adds to the serializer's data: the strategy parameters by default."""
        params = self.param_values()
        return None if params is None else {"params": params}

    def attach_error(self, error: AppError) -> None:
        """A service's refusal: its message for the form, its details next to their fields."""
        self.add_error(None, error.message)
        for key, messages in error.details.items():
            field = self.field_for(key)
            if field is not None:
                self.add_error(field, messages)


class BacktestForm(RunSpecForm):
    serializer_class = BacktestInput
    groups = (MARKET_AND_PERIOD, ACCOUNT_GROUP)

    start = _datetime_field("From", "Candles opened from this time…")
    end = _datetime_field("To", "…up to (not including) this time")


class ScheduleForm(RunSpecForm):
    serializer_class = ScheduleInput
    groups = (
        ("Schedule", ("name", "cron", "lookback_days", "enabled")),
        ("Market", ("exchange", "symbol", "timeframe")),
        ACCOUNT_GROUP,
    )

    name = forms.CharField(max_length=100)
    cron = forms.CharField(
        max_length=100,
        initial="0 2 * * *",
        help_text="minute hour day-of-month month day-of-week, in UTC: 0 2 * * * = every day "
        "at 02:00 UTC",
    )
    lookback_days = forms.CharField(
        label="Look-back (days)",
        initial=30,
        help_text="Each run covers the last N days",
        widget=forms.NumberInput(attrs={"step": "1"}),
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="Run on the schedule")


class SweepForm(RunSpecForm):
    """A sweep's grid: each parameter's field takes one value (fixed), a list (``5, 10, 20``) or
    a range (``5:50:5`` = start:stop:step); empty is the parameter's default."""

    serializer_class = SweepInput
    own_fields = ("grid",)
    groups = (MARKET_AND_PERIOD, ("Ranking", ("rank_by",)), ACCOUNT_GROUP)
    params_legend = "Parameter grid"
    grid = True

    start = _datetime_field("From", "Candles opened from this time…")
    end = _datetime_field("To", "…up to (not including) this time")
    rank_by = forms.ChoiceField(
        label="Rank by",
        choices=[(key, METRICS[key][0] if key in METRICS else key) for key in RANKABLE_METRICS],
        initial="sharpe",
    )

    def extra_values(self) -> dict[str, Any] | None:
        """The parameters given one value are fixed; those given several are the grid."""
        fixed: dict[str, Any] = {}
        grid: dict[str, Any] = {}
        for name, axis in self.given_params().items():
            if isinstance(axis, list) and len(axis) == 1:
                fixed[name] = axis[0]
            elif axis is not None:
                grid[name] = axis
        if self.errors:
            return None
        if not grid:
            self.add_error(
                None, "Give several values (or a range) for at least one parameter to sweep."
            )
            return None
        return {"grid": grid, "params": fixed}


def default_initial(
    *, markets: list[dict[str, Any]], now: datetime | None = None
) -> dict[str, Any]:
    """A new form's values: the first market with stored candles and its last 30 days."""
    initial: dict[str, Any] = {
        "exchange": "bitget",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "initial_cash": 10000,
        "fee_rate": Decimal("0.001"),
        "slippage_bps": 0,
        "position_size": 1,
    }
    if not markets:
        end = (now or datetime.now(tz=UTC)).replace(minute=0, second=0, microsecond=0)
        return {**initial, "start": end - DEFAULT_PERIOD, "end": end}
    market = markets[0]
    end_ms = market["last"] + timeframe_ms(market["timeframe"])
    end = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
    first = datetime.fromtimestamp(market["first"] / 1000, tz=UTC)
    return {
        **initial,
        "exchange": market["exchange"],
        "symbol": market["symbol"],
        "timeframe": market["timeframe"],
        "start": max(first, end - DEFAULT_PERIOD),
        "end": end,
    }


class ScheduleEditForm(forms.Form):
    """What can change on a saved schedule (as ``PATCH /api/backtest-schedules/<id>``): its
    name, timing, look-back and state; its configuration is fixed (make a new schedule)."""

    name = forms.CharField(max_length=100)
    cron = forms.CharField(
        max_length=100,
        help_text="minute hour day-of-month month day-of-week, in UTC: 0 2 * * * = every day "
        "at 02:00 UTC, 0 3 * * mon = Mondays at 03:00 UTC",
    )
    lookback_days = forms.IntegerField(
        label="Look-back (days)",
        min_value=1,
        max_value=MAX_LOOKBACK_DAYS,
        help_text=f"Each run covers the last N days (1 to {MAX_LOOKBACK_DAYS})",
    )
    enabled = forms.BooleanField(required=False, help_text="Run on the schedule")

    def attach_error(self, error: AppError) -> None:
        """A service's refusal (a bad cron, a name in use) next to the field it names."""
        named = {key: value for key, value in error.details.items() if key in self.fields}
        for key, messages in named.items():
            self.add_error(key, messages)
        if not named:
            self.add_error(None, error.message)
