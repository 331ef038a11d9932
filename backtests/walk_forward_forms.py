"""The walk-forward page's form: a run specification, the search and the windows.

It checks what the API checks (``WalkForwardInput``, through :class:`RunSpecForm`). The
searched parameters are typed as a sweep's grid is (``strategies.forms.param_field`` with
``grid``): a range ``5:50:5`` is searched as ``{"low": 5, "high": 50, "step": 5}``, several
values (``sma, ema``) as choices, and one value fixes the parameter for every trial.
"""

from __future__ import annotations

from typing import Any

from django import forms

from backtests.api.walk_forwards import WalkForwardInput
from backtests.forms import ACCOUNT_GROUP, MARKET_AND_PERIOD, RunSpecForm
from backtests.search_space import OBJECTIVE_METRICS, SAMPLERS
from backtests.templatetags.backtests_format import METRICS
from backtests.walk_forward import MAX_DAYS, MAX_WINDOWS

DERIVED_LABELS = {"profit": "Profit (total return)", "profit_drawdown": "Profit / max drawdown"}


def _whole_number(label: str, help_text: str, *, initial: int | None = None) -> forms.CharField:
    """A whole number typed as text: the serializer parses it, so its messages are the API's."""
    return forms.CharField(
        label=label,
        help_text=help_text,
        initial=initial,
        required=initial is not None,
        widget=forms.NumberInput(attrs={"step": "1", "inputmode": "numeric"}),
    )


def _datetime_field(label: str, help_text: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        help_text=help_text,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


def searched(axis: Any) -> dict[str, Any] | None:
    """A grid field's value as a search-space dimension; None for one value (fixed) or none."""
    if isinstance(axis, dict):
        return {"low": axis["start"], "high": axis["stop"], "step": axis["step"]}
    if isinstance(axis, list) and len(axis) > 1:
        return {"choices": axis}
    return None


class WalkForwardForm(RunSpecForm):
    serializer_class = WalkForwardInput
    own_fields = ("space",)
    groups = (
        MARKET_AND_PERIOD,
        (
            "Windows",
            ("in_sample_days", "out_of_sample_days", "windows", "anchored"),
        ),
        ("Search in each window", ("objective", "trials", "sampler", "min_trades", "seed")),
        ACCOUNT_GROUP,
    )
    params_legend = "Parameters to search"
    grid = True

    start = _datetime_field("From", "The first window starts here…")
    end = _datetime_field("To", "…and the last one must end by here")
    in_sample_days = _whole_number(
        "In-sample days", "Each window optimises on this many days", initial=14
    )
    out_of_sample_days = _whole_number(
        "Out-of-sample days", "…then runs its best parameters on the next this many", initial=4
    )
    windows = _whole_number(
        "Windows", f"1 to {MAX_WINDOWS}: in-sample + windows × out-of-sample days", initial=4
    )  # the defaults need 14 + 4 × 4 = 30 days: the form's default period
    anchored = forms.BooleanField(
        required=False,
        help_text="Every in-sample period starts at From and grows (else they roll forward)",
    )
    objective = forms.ChoiceField(
        choices=[
            (key, METRICS[key][0] if key in METRICS else DERIVED_LABELS.get(key, key))
            for key in OBJECTIVE_METRICS
        ],
        initial="sharpe",
        help_text="Maximised in sample (the API takes weighted mixes and several objectives)",
    )
    trials = _whole_number("Trials per window", "Backtests each window's search runs", initial=20)
    sampler = forms.ChoiceField(
        choices=[("", "Automatic (TPE)"), *[(name, name.upper()) for name in SAMPLERS]],
        required=False,
    )
    min_trades = _whole_number(
        "Minimum trades", "A trial with fewer trades is never a window's best", initial=1
    )
    seed = _whole_number("Seed", "Optional: the same seed draws the same trials")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("in_sample_days", "out_of_sample_days"):
            self.fields[name].widget.attrs.update({"min": "1", "max": str(MAX_DAYS)})

    def extra_values(self) -> dict[str, Any] | None:
        """The parameters given a range or several values are searched; one value fixes one."""
        fixed: dict[str, Any] = {}
        space: dict[str, Any] = {}
        for name, axis in self.given_params().items():
            dimension = searched(axis)
            if dimension is not None:
                space[name] = dimension
            elif isinstance(axis, list) and axis:
                fixed[name] = axis[0]
        if self.errors:
            return None
        if not space:
            self.add_error(
                None,
                "Give a range (5:50:5) or several values for at least one parameter to search.",
            )
            return None
        return {"space": space, "params": fixed}

    def serializer_data(self) -> dict[str, Any]:
        """The checked fields, the space left to :meth:`extra_values` (an empty placeholder)."""
        return {**super().serializer_data(), "space": {}}
