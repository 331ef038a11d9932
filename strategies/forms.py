"""A strategy's parameters as a Django form, generated from its declarations (``Param``).

Pages that configure a strategy (a bot, a backtest, a schedule) render one of these per strategy,
each under the strategy's key as its prefix (``ma_cross-fast``). The browser gets bounds and
help text from the declarations; the server validates the chosen strategy's form with the same
rules as the API (``Strategy.validate``: field rules, then the strategy's cross-field check).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from strategies.base import Strategy as StrategyClass
from strategies.params import NON_FIELD, Param, StrategyParamError, show


def param_field(param: Param) -> forms.Field:
    """The form field for one declared parameter: its type, bounds, default and help."""
    options: dict[str, Any] = {
        "label": param.name.replace("_", " ").capitalize(),
        "initial": param.default,
        "help_text": f"{param.help} ({param.expectation()})" if param.help else param.expectation(),
    }
    if param.kind == "int":
        return forms.IntegerField(
            min_value=_bound(param.min), max_value=_bound(param.max), **options
        )
    if param.kind == "float":
        field = forms.FloatField(min_value=param.min, max_value=param.max, **options)
        field.widget.attrs["step"] = "any"
        return field
    if param.kind == "bool":
        return forms.BooleanField(required=False, **options)
    by_text = {show(choice): choice for choice in param.choices or ()}
    return forms.TypedChoiceField(
        choices=[(text, str(choice)) for text, choice in by_text.items()],
        coerce=by_text.__getitem__,
        **{**options, "initial": show(param.default)},
    )


def _bound(value: float | None) -> int | None:
    return None if value is None else int(value)


class StrategyParamsForm(forms.Form):
    """One strategy's parameters; ``values`` holds them once the form is valid."""

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        strategy: type[StrategyClass],
        values: Mapping[str, Any] | None = None,
        exclude: tuple[str, ...] = (),
    ) -> None:
        initial = {key: _initial(strategy, key, value) for key, value in (values or {}).items()}
        super().__init__(data, prefix=strategy.key, initial=initial)
        self.strategy = strategy
        self.values: dict[str, Any] = {}
        for param in strategy.params:
            if param.name not in exclude:
                self.fields[param.name] = param_field(param)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            self.values = self.strategy.validate(cleaned)
        except StrategyParamError as exc:
            self.add_errors(exc.errors)
        return cleaned

    def add_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Errors from the service (``AppError.details``) next to the fields they name."""
        for name, messages in errors.items():
            field = name if name in self.fields and name != NON_FIELD else None
            for message in messages:
                self.add_error(field, message)


def _initial(strategy: type[StrategyClass], key: str, value: Any) -> Any:
    """A stored value as its field shows it (a choice's field holds its JSON text)."""
    for param in strategy.params:
        if param.name == key and param.kind == "choice":
            return show(value)
    return value
