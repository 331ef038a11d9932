"""Forms of the backtest, sweep and schedule pages.

A page must accept and refuse what the API accepts and refuses, so the forms reuse its checks:

- the run settings go through the API's own input serializers (``backtests.api``), whose
  messages are attached to the fields;
- a strategy's parameters are fields made from its declarations (bounds and help text), and
  their values are checked by the strategy itself (``Strategy.validate``);
- the rest (symbol, period, grid, quota) is the services' business: the view hands their
  :class:`~tradingbot.errors.AppError` to :meth:`RunSettingsForm.attach_error`.

Parameter fields are named ``param_<name>``. A form is built for one strategy; the pages switch
strategy by posting the form back with ``switch_strategy`` (nothing is created then).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from rest_framework import serializers

from backtests import api
from backtests.services.sweeps import RANKABLE_METRICS
from backtests.templatetags.backtests_format import METRICS
from markets.timeframes import TIMEFRAMES, timeframe_ms
from strategies.base import Strategy
from strategies.models import Strategy as StrategyRow
from strategies.params import NON_FIELD, Param, StrategyParamError
from tradingbot.errors import AppError

PARAM_PREFIX = "param_"
SWITCH_STRATEGY = "switch_strategy"
DEFAULT_PERIOD = timedelta(days=30)
_BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


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


def parse_number(text: str) -> int | float | None:
    """``"12"`` → 12, ``"0.5"`` → 0.5; None for anything that is not a finite number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _choices_of(param: Param) -> dict[str, Any]:
    return {str(choice): choice for choice in param.choices or ()}


def _help(param: Param) -> str:
    if param.kind == "bool":
        return param.help or "True or false"
    expectation = param.expectation()
    return f"{param.help} ({expectation})" if param.help else expectation.capitalize()


def _bounds(param: Param) -> dict[str, str]:
    attrs = {"step": "1" if param.kind == "int" else "any"}
    if param.min is not None:
        attrs["min"] = f"{param.min:g}"
    if param.max is not None:
        attrs["max"] = f"{param.max:g}"
    return attrs


ACCOUNT_GROUP = (
    "Simulated account",
    ("initial_cash", "fee_rate", "slippage_bps", "position_size", "stop_loss", "take_profit"),
)
MARKET_AND_PERIOD = ("Market and period", ("exchange", "symbol", "timeframe", "start", "end"))


class RunSettingsForm(forms.Form):
    """What to simulate and how the simulated account trades, for one strategy."""

    serializer_class: ClassVar[type[serializers.Serializer]] = api.RunSettingsInput
    # Form fields that are not the serializer's (the parameters are added per strategy).
    own_fields: ClassVar[tuple[str, ...]] = ()
    # The page's fieldsets; the strategy's parameters come before the last one.
    groups: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("Market", ("exchange", "symbol", "timeframe")),
        ACCOUNT_GROUP,
    )
    params_legend = "Strategy parameters"

    strategy = forms.ChoiceField()
    exchange = forms.ChoiceField(choices=api.EXCHANGE_CHOICES)
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
    stop_loss = _number_field("Stop-loss", "0.02 = 2 %; empty = none", required=False)
    take_profit = _number_field("Take-profit", "0.04 = 4 %; empty = none", required=False)

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
            self.fields["strategy"].initial = strategy.key
            self.fields["stop_loss"].initial = strategy.stop_loss
            self.fields["take_profit"].initial = strategy.take_profit
            for param in strategy.params:
                self.fields[PARAM_PREFIX + param.name] = self.param_field(param)

    def _copy_bounds(self) -> None:
        """The serializer's bounds as the inputs' ``min``/``max`` (a hint: the server decides)."""
        declared = self.serializer_class().fields
        for name, field in self.fields.items():
            spec = declared.get(name)
            for attr in ("min_value", "max_value"):
                bound = getattr(spec, attr, None)
                if bound is not None and isinstance(field.widget, forms.NumberInput):
                    field.widget.attrs[attr[:3]] = str(bound)

    # --- the parameters ----------------------------------------------------------------------

    def param_field(self, param: Param) -> forms.Field:
        """One value of the parameter; empty means its default."""
        label, help_text = param.name, _help(param)
        if param.kind == "bool":
            return forms.BooleanField(
                label=label, help_text=help_text, required=False, initial=param.default
            )
        if param.kind == "choice":
            return forms.ChoiceField(
                label=label,
                help_text=help_text,
                choices=[(key, key) for key in _choices_of(param)],
                initial=str(param.default),
            )
        return forms.CharField(
            label=label,
            help_text=help_text,
            required=False,
            initial=param.default,
            widget=forms.NumberInput(attrs=_bounds(param)),
        )

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

    def param_values(self) -> dict[str, Any] | None:
        """The parameters, checked by the strategy (None, with field errors, when invalid)."""
        assert self.strategy_class is not None
        raw: dict[str, Any] = {}
        for param in self.strategy_class.params:
            name = PARAM_PREFIX + param.name
            if name not in self.cleaned_data:
                continue  # already refused by its field
            value = self.cleaned_data[name]
            if param.kind == "bool":
                raw[param.name] = bool(value)
            elif param.kind == "choice":
                raw[param.name] = _choices_of(param)[value]
            elif value not in (None, ""):
                number = parse_number(value)
                if number is None:
                    self.add_error(name, f"{param.name} must be {param.expectation()}.")
                    continue
                raw[param.name] = number
        try:
            return self.strategy_class.validate(raw)
        except StrategyParamError as exc:
            for key, messages in exc.errors.items():
                self.add_error(self.field_for(key) if key != NON_FIELD else None, messages)
            return None

    # --- the settings, through the API's serializer -------------------------------------------

    def serializer_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        declared: Mapping[str, Any] = self.serializer_class().fields
        for name in declared:
            if name in self.cleaned_data and name not in self.own_fields:
                value = self.cleaned_data[name]
                if value in (None, "") and name in ("stop_loss", "take_profit"):
                    data[name] = None  # an empty level means "none"
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


class BacktestForm(RunSettingsForm):
    serializer_class = api.BacktestInput
    groups = (MARKET_AND_PERIOD, ACCOUNT_GROUP)

    start = _datetime_field("From", "Candles opened from this time…")
    end = _datetime_field("To", "…up to (not including) this time")


class ScheduleForm(RunSettingsForm):
    serializer_class = api.ScheduleInput
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


class SweepForm(RunSettingsForm):
    """A sweep's grid: each parameter's field takes one value (fixed), a list (``5, 10, 20``) or
    a range (``5:50:5`` = start:stop:step); empty is the parameter's default."""

    serializer_class = api.SweepInput
    own_fields = ("grid",)
    groups = (MARKET_AND_PERIOD, ("Ranking", ("rank_by",)), ACCOUNT_GROUP)
    params_legend = "Parameter grid"

    start = _datetime_field("From", "Candles opened from this time…")
    end = _datetime_field("To", "…up to (not including) this time")
    rank_by = forms.ChoiceField(
        label="Rank by",
        choices=[(key, METRICS[key][0] if key in METRICS else key) for key in RANKABLE_METRICS],
        initial="sharpe",
    )

    def param_field(self, param: Param) -> forms.Field:
        if param.kind == "choice":
            examples = ", ".join(_choices_of(param))
        elif param.kind == "bool":
            examples = "true, false"
        else:
            examples = "5, 10, 20 or a range start:stop:step such as 5:50:5"
        return forms.CharField(
            label=param.name,
            required=False,
            help_text=f"{_help(param)}. One value, or several: {examples}. "
            f"Empty = the default, {param.default}.",
        )

    def extra_values(self) -> dict[str, Any] | None:
        assert self.strategy_class is not None
        fixed: dict[str, Any] = {}
        grid: dict[str, Any] = {}
        for param in self.strategy_class.params:
            name = PARAM_PREFIX + param.name
            axis = self._axis(param, name, str(self.cleaned_data.get(name) or ""))
            if isinstance(axis, list) and len(axis) == 1:
                fixed[param.name] = axis[0]
            elif axis is not None:
                grid[param.name] = axis
        if self.errors:
            return None
        if not grid:
            self.add_error(
                None, "Give several values (or a range) for at least one parameter to sweep."
            )
            return None
        return {"grid": grid, "params": fixed}

    def _axis(self, param: Param, name: str, text: str) -> list[Any] | dict[str, Any] | None:
        """The field's text as a list of values or a range; None when empty or wrong."""
        text = text.strip()
        if not text:
            return None
        if ":" in text and param.kind in ("int", "float"):
            numbers = [parse_number(part.strip()) for part in text.split(":")]
            if len(numbers) != 3 or None in numbers:
                self.add_error(name, "Write a range as start:stop:step, e.g. 5:50:5.")
                return None
            return dict(zip(("start", "stop", "step"), numbers, strict=True))
        values = [self._value(param, item.strip()) for item in text.split(",") if item.strip()]
        if any(value is None for value in values):
            self.add_error(name, f"Each value must be {param.expectation()}.")
            return None
        return values

    @staticmethod
    def _value(param: Param, text: str) -> Any:
        if param.kind == "bool":
            return _BOOLEAN_WORDS.get(text.lower())
        if param.kind == "choice":
            return _choices_of(param).get(text)
        return parse_number(text)


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
