"""The new-optimisation form: the run settings, a search-space editor and the objective.

The search space is edited one row per strategy parameter: tick "search" and give a range
(low, high, optional step, log scale) or a list of choices; a parameter not searched takes the
value in its "fixed" field (empty: its default). The objective is one metric, a weighted mix of
up to three, or up to three objectives searched together for their Pareto front. The form
builds the JSON that ``POST /api/optimizations`` takes (``space``, ``objective``, ``params``);
the checks are the API's serializer's and the service's, whose messages land next to the fields
they name (``field_for``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms

from backtests.api.optimizations import OptimizationInput
from backtests.forms import (
    ACCOUNT_GROUP,
    MARKET_AND_PERIOD,
    PARAM_PREFIX,
    RunSpecForm,
    _datetime_field,
    _number_field,
)
from backtests.search_space import DERIVED_METRICS, MAX_OBJECTIVES, OBJECTIVE_METRICS, SAMPLERS
from backtests.templatetags.backtests_format import METRICS
from strategies.base import Strategy
from strategies.forms import ParamGridField
from strategies.params import Param

SEARCH, LOW, HIGH, STEP, LOG, CHOICES = "search_", "low_", "high_", "step_", "log_", "choices_"
OBJECTIVE_KINDS = (
    ("one", "One metric"),
    ("mix", "A weighted mix of metrics (their weighted sum)"),
    ("several", "Several objectives at once (their Pareto front)"),
)
SAMPLER_LABELS = {
    "tpe": "TPE (Bayesian: learns from the trials so far)",
    "nsga2": "NSGA-II (genetic; for several objectives)",
    "random": "Random",
    "grid": "Grid (every point, in order; ranges need a step)",
}


def metric_choices() -> list[tuple[str, str]]:
    return [
        (key, METRICS[key][0] if key in METRICS else f"{key} ({DERIVED_METRICS[key]})")
        for key in OBJECTIVE_METRICS
    ]


@dataclass(frozen=True)
class SpaceRow:
    """One parameter's row of the search-space editor: its bound fields (None: not offered)."""

    param: Param
    search: forms.BoundField
    fixed: forms.BoundField
    low: forms.BoundField | None
    high: forms.BoundField | None
    step: forms.BoundField | None
    log: forms.BoundField | None
    choices: forms.BoundField

    @property
    def numeric(self) -> bool:
        return self.param.kind in ("int", "float")

    @property
    def errors(self) -> bool:
        fields = (self.fixed, self.low, self.high, self.step, self.choices)
        return any(field is not None and field.errors for field in fields)


class OptimizationForm(RunSpecForm):
    serializer_class = OptimizationInput
    groups = (
        MARKET_AND_PERIOD,
        ("Search", ("trials", "sampler", "min_trades", "seed")),
        ACCOUNT_GROUP,
    )
    params_legend = "Search space"

    start = _datetime_field("From", "Candles opened from this time…")
    end = _datetime_field("To", "…up to (not including) this time")
    trials = _number_field("Trials", "How many parameter sets to try (a grid: at most its size)")
    sampler = forms.ChoiceField(
        choices=[("", "Automatic: TPE for one objective, NSGA-II for several")]
        + [(key, SAMPLER_LABELS[key]) for key in SAMPLERS],
        required=False,
    )
    min_trades = _number_field(
        "Minimum trades", "A trial with fewer trades is never the best", required=False
    )
    seed = _number_field("Seed", "Optional: the same seed samples the same trials", required=False)
    objective_kind = forms.ChoiceField(label="Maximise", choices=OBJECTIVE_KINDS, initial="one")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for index in range(1, MAX_OBJECTIVES + 1):
            first = index == 1
            self.fields[f"metric_{index}"] = forms.ChoiceField(
                label=f"Metric {index}",
                choices=([] if first else [("", "—")]) + metric_choices(),
                required=first,
                initial="sharpe" if first else "",
            )
            self.fields[f"weight_{index}"] = forms.FloatField(
                label=f"Weight {index}",
                required=False,
                initial=1,
                help_text="In a mix: its share of the sum" if first else "",
                widget=forms.NumberInput(attrs={"step": "any"}),
            )
        self.fields["trials"].initial = 30
        self.fields["min_trades"].initial = 1

    def _add_strategy(self, strategy: type[Strategy]) -> None:
        super()._add_strategy(strategy)
        for param in strategy.params:
            name = param.name
            self.fields[SEARCH + name] = forms.BooleanField(required=False, label="Search")
            self.fields[PARAM_PREFIX + name].widget.attrs["aria-label"] = (
                f"{param.display_name}: fixed value"
            )
            if param.kind in ("int", "float"):
                for prefix, label in ((LOW, "Low"), (HIGH, "High"), (STEP, "Step")):
                    field = forms.FloatField(label=label, required=False)
                    bound = {LOW: param.min, HIGH: param.max}.get(prefix)
                    if bound is not None:
                        field.widget.attrs["placeholder"] = f"{bound:g}"
                    field.widget.attrs["step"] = "1" if param.kind == "int" else "any"
                    field.widget.attrs["aria-label"] = f"{param.display_name}: {label.lower()}"
                    self.fields[prefix + name] = field
                self.fields[LOG + name] = forms.BooleanField(required=False, label="Log scale")
                self.fields[LOG + name].widget.attrs["aria-label"] = f"{param.display_name}: log"
            choices = ParamGridField(param)
            choices.label = "Choices"
            choices.help_text = ""
            choices.widget.attrs["placeholder"] = _choices_placeholder(param)
            choices.widget.attrs["aria-label"] = f"{param.display_name}: choices"
            self.fields[CHOICES + name] = choices

    # --- the page's parts ---------------------------------------------------------------------

    @property
    def space_rows(self) -> list[SpaceRow]:
        if self.strategy_class is None:
            return []
        return [self._row(param) for param in self.strategy_class.params]

    def _row(self, param: Param) -> SpaceRow:
        def bound(prefix: str) -> forms.BoundField | None:
            return self[prefix + param.name] if prefix + param.name in self.fields else None

        return SpaceRow(
            param=param,
            search=self[SEARCH + param.name],
            fixed=self[PARAM_PREFIX + param.name],
            low=bound(LOW),
            high=bound(HIGH),
            step=bound(STEP),
            log=bound(LOG),
            choices=self[CHOICES + param.name],
        )

    def fieldset(self, legend: str) -> list[forms.BoundField]:
        """The fields of the group named ``legend`` (``groups``)."""
        names = dict(self.groups)[legend]
        return [self[name] for name in names]

    @property
    def market_fields(self) -> list[forms.BoundField]:
        return self.fieldset(MARKET_AND_PERIOD[0])

    @property
    def search_fields(self) -> list[forms.BoundField]:
        return self.fieldset("Search")

    @property
    def account_fields(self) -> list[forms.BoundField]:
        return self.fieldset(ACCOUNT_GROUP[0])

    @property
    def objective_fields(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [
            (self[f"metric_{index}"], self[f"weight_{index}"])
            for index in range(1, MAX_OBJECTIVES + 1)
        ]

    # --- where a service's refusal goes --------------------------------------------------------

    def field_for(self, key: str) -> str | None:
        """``objective`` is the first metric's; ``params.<name>`` a fixed value's; a parameter's
        name its search row's (its range, or its choices), or its fixed value when not searched."""
        if key == "objective":
            return "metric_1"
        if key.startswith("params."):
            return super().field_for(key.removeprefix("params."))
        if key in ("space", "params"):
            return None
        if self.cleaned_data.get(SEARCH + key):
            if self.cleaned_data.get(CHOICES + key) or LOW + key not in self.fields:
                return CHOICES + key
            return LOW + key
        return super().field_for(key)

    # --- the JSON the service takes ------------------------------------------------------------

    def serializer_data(self) -> dict[str, Any]:
        # The space and the objective are built by extra_values and checked by the service.
        return {**super().serializer_data(), "space": {}}

    def extra_values(self) -> dict[str, Any] | None:
        assert self.strategy_class is not None
        space: dict[str, Any] = {}
        fixed: dict[str, Any] = {}
        for param in self.strategy_class.params:
            if self.cleaned_data.get(SEARCH + param.name):
                dimension = self._dimension(param)
                if dimension is not None:
                    space[param.name] = dimension
            else:
                value = self.cleaned_data.get(PARAM_PREFIX + param.name)
                if value is not None:
                    fixed[param.name] = value
        objective = self._objective()
        if not space and not self.errors:
            self.add_error(None, "Tick “Search” for at least one parameter, with its range.")
        if self.errors or objective is None:
            return None
        return {"space": space, "params": fixed, "objective": objective}

    def _dimension(self, param: Param) -> dict[str, Any] | None:
        """The row's ``{"low", "high", "step", "log"}`` or ``{"choices"}``; None with an error."""
        name = param.name
        choices = self.cleaned_data.get(CHOICES + name)
        if isinstance(choices, dict):  # written start:stop:step
            self.add_error(CHOICES + name, "Give a range in Low, High and Step; here a list.")
            return None
        low, high = self.cleaned_data.get(LOW + name), self.cleaned_data.get(HIGH + name)
        if choices:
            if low is not None or high is not None:
                self.add_error(CHOICES + name, "Give a range (Low, High) or choices, not both.")
                return None
            return {"choices": choices}
        if param.kind == "bool":
            return {"choices": [False, True]}
        if param.kind == "choice":
            return {"choices": list(param.choices or ())}
        if low is None or high is None:
            self.add_error(LOW + name, f"Give Low and High ({param.expectation()}), or choices.")
            return None
        spec: dict[str, Any] = {"low": _typed(param, low), "high": _typed(param, high)}
        step = self.cleaned_data.get(STEP + name)
        if step is not None:
            spec["step"] = _typed(param, step)
        if self.cleaned_data.get(LOG + name):
            spec["log"] = True
        return spec

    def _objective(self) -> Any:
        """A metric, ``{metric: weight}``, or a list of metrics; None with an error."""
        chosen = [
            (self.cleaned_data.get(f"metric_{index}"), self.cleaned_data.get(f"weight_{index}"))
            for index in range(1, MAX_OBJECTIVES + 1)
        ]
        picked = [
            (metric, 1.0 if weight is None else weight) for metric, weight in chosen if metric
        ]
        metrics = [metric for metric, _ in picked]
        kind = self.cleaned_data.get("objective_kind")
        if not metrics or kind is None:
            return None
        if len(set(metrics)) != len(metrics):
            self.add_error("metric_2", "Each metric once.")
            return None
        if kind == "one":
            if len(metrics) > 1:
                self.add_error(
                    "objective_kind",
                    "Several metrics: pick a weighted mix or several objectives.",
                )
                return None
            return metrics[0]
        if kind == "mix":
            return dict(picked)
        return metrics


def _typed(param: Param, number: float) -> int | float:
    """A whole number for an integer parameter (the space keeps the parameter's type)."""
    return int(number) if param.kind == "int" and float(number).is_integer() else number


def _choices_placeholder(param: Param) -> str:
    if param.kind == "bool":
        return "true, false"
    if param.kind == "choice":
        return ", ".join(str(choice) for choice in param.choices or ())
    return "or a list: 5, 10, 20"
